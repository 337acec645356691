# shellcheck shell=bash
# TARGET=azure-cli: the Azure CLI route (`az ml ... --file <the repository's YAML>`), as Azure's
# own CLI samples deploy and fine-tune. deitkit only does what runs here (the SKU gate, the
# environments' build contexts, the MLTables of the uploaded images' URLs); every call to
# Azure is an `az ml` command. DRY_RUN=1 prints those commands and runs none of them.
# Sourced by common.sh, after the parameters.

MODEL_ASSET="${MODEL_ASSET:-deitkit-sample-model}"           # the model registered for endpoints
BATCH_CLUSTER="${BATCH_CLUSTER:-deitkit-batch-cluster}"       # endpoints/batch/deployment.yml's
BATCH_CLUSTER_SIZE="${BATCH_CLUSTER_SIZE:-Standard_DS3_v2}"   # its compute_size tag
AZ_WORKSPACE=(--subscription "$SUBSCRIPTION_ID" --resource-group "$RESOURCE_GROUP"
  --workspace-name "$WORKSPACE_NAME")

# require_az: stop at once when the Azure CLI is missing (a dry run needs none).
require_az() {
  if [ "$DRY_RUN" != 1 ] && ! command -v az >/dev/null 2>&1; then
    echo "error: TARGET=azure-cli runs the Azure CLI, and az is not installed; install it" \
      "(https://learn.microsoft.com/cli/azure/install-azure-cli) and its ml extension" \
      "(az extension add --name ml), or use TARGET=azure or DRY_RUN=1" >&2
    exit 2
  fi
}

# show_command WORD...: the command as one shell line, words quoted only where needed; a
# ${VAR} an earlier command sets stays a variable, in double quotes.
show_command() {
  local word line=""
  for word in "$@"; do
    if [[ "$word" =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then
      line+=" $word"
    elif [[ "$word" == *"\${"* ]]; then
      line+=" \"$word\""
    else
      line+=" $(printf '%q' "$word")"
    fi
  done
  echo "${line# }"
}

# run_command WORD...: run it; DRY_RUN=1 prints it instead.
run_command() {
  if [ "$DRY_RUN" = 1 ]; then
    show_command "$@"
    return 0
  fi
  "$@"
}

# capture VAR WORD...: VAR=$(WORD...); DRY_RUN=1 prints that line and sets VAR to ${VAR}, so
# the commands after it print the variable.
capture() {
  local var=$1 value
  shift
  if [ "$DRY_RUN" = 1 ]; then
    echo "$var=\$($(show_command "$@"))"
    # shellcheck disable=SC2016  # the literal text ${VAR}
    printf -v "$var" '${%s}' "$var"
    return 0
  fi
  value=$("$@")
  printf -v "$var" '%s' "$value"
  echo "$var=$value"
}

# az_environment NAME: the repository's environment NAME at the version deitkit computes from
# its build context (`deitkit azure environments stage`), registered when the workspace lacks
# it; sets ENV_REF=azureml:NAME:VERSION.
az_environment() {
  local name version context spec
  IFS=$'\t' read -r name version context spec < <(deitkit azure environments stage --name "$1")
  ENV_REF="azureml:$name:$version"
  local show=(az ml environment show --name "$name" --version "$version" "${AZ_WORKSPACE[@]}")
  local create=(az ml environment create --file "$spec"
    --set "version=$version" "build.path=$context" "${AZ_WORKSPACE[@]}")
  if [ "$DRY_RUN" = 1 ]; then
    echo "$(show_command "${show[@]}") >/dev/null 2>&1 || $(show_command "${create[@]}")"
  elif "${show[@]}" >/dev/null 2>&1; then
    echo "environment $ENV_REF is registered already"
  else
    "${create[@]}"
  fi
}

# az_model MODEL_DIR: register the packaged model as MODEL_ASSET; sets MODEL_REF.
az_model() {
  capture MODEL_VERSION az ml model create --name "$MODEL_ASSET" --type mlflow_model \
    --path "$1" --query version --output tsv "${AZ_WORKSPACE[@]}"
  # shellcheck disable=SC2034  # the endpoint scripts deploy it
  MODEL_REF="azureml:$MODEL_ASSET:$MODEL_VERSION"
}

# finetune_with_az KIND NAME: upload WORK_DIR/data as Azure's samples do (the images as the
# uri_folder NAME-images, MLTables of its azureml:// URLs as NAME-training/-validation),
# register the training environment, submit samples/azure-cli/finetune-KIND-pipeline.yml.
finetune_with_az() {
  local kind=$1 name=$2
  deitkit sku check "$FINETUNE_SKU" --for finetune
  capture IMAGES_PATH az ml data create --name "$name-images" --type uri_folder \
    --path "$(image_folder)" --query path --output tsv "${AZ_WORKSPACE[@]}"
  run_command deitkit azure data stage "$WORK_DIR/data" --images-url "$IMAGES_PATH" \
    --out "$WORK_DIR/azure-data"
  capture TRAIN_VERSION az ml data create --name "$name-training" --type mltable \
    --path "$WORK_DIR/azure-data/training-mltable-folder" --query version --output tsv \
    "${AZ_WORKSPACE[@]}"
  capture VALIDATION_VERSION az ml data create --name "$name-validation" --type mltable \
    --path "$WORK_DIR/azure-data/validation-mltable-folder" --query version --output tsv \
    "${AZ_WORKSPACE[@]}"
  # The pipeline's steps name the environment @latest: the version registered here.
  az_environment deitkit-image-classification-training
  capture JOB_NAME az ml job create --file "$SAMPLES_DIR/azure-cli/finetune-$kind-pipeline.yml" \
    --set "inputs.training_data.path=azureml:$name-training:$TRAIN_VERSION" \
    "inputs.validation_data.path=azureml:$name-validation:$VALIDATION_VERSION" \
    "inputs.model_name=$HUB_MODEL" "inputs.instance_type=$FINETUNE_SKU" \
    --query name --output tsv "${AZ_WORKSPACE[@]}"
  echo "then: az ml job stream --name $JOB_NAME, and register its mlflow_model_folder output" \
    "(az ml model create --type mlflow_model --path azureml://jobs/$JOB_NAME/outputs/mlflow_model_folder)"
}
