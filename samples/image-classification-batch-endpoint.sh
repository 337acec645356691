#!/usr/bin/env bash
# Batch endpoint: score a folder of images and a CSV of base64 images into predictions.csv.
#
# TARGET=local (default): deitkit batch-score, the code Azure's batch deployment runs
# (endpoints/batch/driver.py). TARGET=azure: a batch endpoint from endpoints/batch/*.yml on a
# Standard_DS3_v2 cluster (the inference environment registered when missing), then a scoring
# job on the same folder (DRY_RUN=1 prints the entities instead). TARGET=azure-cli: the same
# with `az ml batch-deployment create --file ...` and friends (DRY_RUN=1 prints the commands).
# MODEL_DIR=a packaged model; unset: a quick fine-tune first. See common.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ENDPOINT_NAME="${ENDPOINT_NAME:-deitkit-batch-sample}"
BATCH_IMAGES="${BATCH_IMAGES:-20}"

start_sample image-classification-batch-endpoint
prepare_data multiclass
model=$(quick_model)

# The inputs Azure's batch samples use: a folder of image files, and a CSV with an `image`
# column of base64 strings (one row per image).
mkdir -p "$WORK_DIR/batch/images"
printf 'file_name,image\n' >"$WORK_DIR/batch/images.csv"
while read -r path; do
  name="$(basename "$(dirname "$path")")-$(basename "$path")"
  cp "$path" "$WORK_DIR/batch/images/$name"
  printf '%s,%s\n' "$name" "$(base64 -w 0 "$path")" >>"$WORK_DIR/batch/images.csv"
done < <(first_images "$BATCH_IMAGES")

if [ "$TARGET" = azure ]; then
  # shellcheck disable=SC2046  # dry_run_flag is one word or none
  deitkit azure deploy-batch --endpoint "$ENDPOINT_NAME" --model "$model" \
    "${WORKSPACE_FLAGS[@]}" $(dry_run_flag)
  if [ "$DRY_RUN" != 1 ]; then
    deitkit azure invoke-batch --endpoint "$ENDPOINT_NAME" --input "$WORK_DIR/batch/images" \
      "${WORKSPACE_FLAGS[@]}"
  fi
  exit 0
fi

if [ "$TARGET" = azure-cli ]; then
  deitkit sku check "$BATCH_CLUSTER_SIZE" --for inference
  az_model "$model"
  az_environment deitkit-image-classification-inference
  run_command az ml compute create --name "$BATCH_CLUSTER" --type amlcompute \
    --size "$BATCH_CLUSTER_SIZE" --min-instances 0 --max-instances 3 "${AZ_WORKSPACE[@]}"
  run_command az ml batch-endpoint create --file "$REPO_DIR/endpoints/batch/endpoint.yml" \
    --set "name=$ENDPOINT_NAME" "${AZ_WORKSPACE[@]}"
  run_command az ml batch-deployment create --file "$REPO_DIR/endpoints/batch/deployment.yml" \
    --set "endpoint_name=$ENDPOINT_NAME" "model=$MODEL_REF" "environment=$ENV_REF" \
    "compute=azureml:$BATCH_CLUSTER" --set-default "${AZ_WORKSPACE[@]}"
  capture BATCH_JOB az ml batch-endpoint invoke --name "$ENDPOINT_NAME" \
    --input "$WORK_DIR/batch/images" --input-type uri_folder --query name --output tsv \
    "${AZ_WORKSPACE[@]}"
  echo "then: az ml job stream --name $BATCH_JOB; az ml job download --name $BATCH_JOB" \
    "--output-name score (predictions.csv)"
  exit 0
fi

deitkit batch-score --model "$model" --input "$WORK_DIR/batch/images" \
  --output "$WORK_DIR/batch/predictions.csv"
deitkit batch-score --model "$model" --input "$WORK_DIR/batch/images.csv" \
  --output "$WORK_DIR/batch/predictions-from-csv.csv"
echo "-- the first predictions (file_name,predicted,probs,labels,error)"
head -n 4 "$WORK_DIR/batch/predictions.csv"
