# shellcheck shell=bash
# Shared by the CLI samples: parameters, the data step, the workspace check, a local endpoint.
# Every parameter is an environment variable; the defaults run everything on this machine.

TARGET="${TARGET:-local}"                       # local | azure | azure-cli (az ml, the YAMLs)
FRIDGE_ZIP="${FRIDGE_ZIP:-}"                    # a downloaded fridgeObjects.zip (see README)
EPOCHS="${EPOCHS:-10}"
# The quickstart's small DeiT-shaped model, trained from scratch at 32 px on the digits. With a
# real fridgeObjects zip and a model hub, use MODEL=facebook/deit-base-patch16-224 IMAGE_SIZE=224
# LEARNING_RATE=5e-5 AUGMENTATIONS=true (Azure's defaults).
MODEL="${MODEL:-scratch:deit-tiny:patch_size=8,num_hidden_layers=6}"
IMAGE_SIZE="${IMAGE_SIZE:-32}"
LEARNING_RATE="${LEARNING_RATE:-1e-3}"
AUGMENTATIONS="${AUGMENTATIONS:-false}"
# Azure: the workspace (placeholders are refused before anything runs) and what to run on.
SUBSCRIPTION_ID="${SUBSCRIPTION_ID:-<SUBSCRIPTION_ID>}"
RESOURCE_GROUP="${RESOURCE_GROUP:-<RESOURCE_GROUP>}"
WORKSPACE_NAME="${WORKSPACE_NAME:-<WORKSPACE_NAME>}"
DRY_RUN="${DRY_RUN:-0}"     # 1: print the Azure ML entities (azure-cli: the az commands), call nothing
PORT="${PORT:-5001}"                            # the local endpoint's port (azmlinfsrv's default)
HUB_MODEL="${HUB_MODEL:-facebook/deit-base-patch16-224}"   # what Azure's pipeline fine-tunes
FINETUNE_SKU="${FINETUNE_SKU:-Standard_NC4as_T4_v3}"      # one of the finetune allow-list
# Azure data assets of the fine-tuning samples: NAME-images (uri_folder), NAME-training and
# NAME-validation (mltable); default deitkit-multiclass / deitkit-multilabel.
DATA_NAME="${DATA_NAME:-}"

SAMPLES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC2034  # the endpoint scripts name its endpoints/*.yml
REPO_DIR="$(dirname "$SAMPLES_DIR")"
# shellcheck source-path=SCRIPTDIR
source "$SAMPLES_DIR/common-azure-cli.sh"

SAMPLE_MARKER=".deitkit-sample-run"

# start_sample NAME: check the parameters and make a fresh WORK_DIR (default sample-output/NAME).
start_sample() {
  case "$TARGET" in
    local | azure | azure-cli) ;;
    *) echo "error: TARGET must be local, azure or azure-cli, got '$TARGET'" >&2; exit 2 ;;
  esac
  if [ "$TARGET" != local ]; then
    # Checked before anything else runs: placeholders or a malformed id stop here.
    deitkit azure workspace "${WORKSPACE_FLAGS[@]}"
  fi
  if [ "$TARGET" = azure-cli ]; then require_az; fi
  WORK_DIR="${WORK_DIR:-sample-output/$1}"
  if [ -e "$WORK_DIR" ]; then
    # Only a previous run of a sample is replaced; anything else is the user's and stays.
    if [ ! -e "$WORK_DIR/$SAMPLE_MARKER" ]; then
      echo "error: $WORK_DIR exists and is not a sample's output; set WORK_DIR" >&2
      exit 2
    fi
    rm -rf "$WORK_DIR"
  fi
  mkdir -p "$WORK_DIR"
  touch "$WORK_DIR/$SAMPLE_MARKER"
  echo "== $1 (TARGET=$TARGET) in $WORK_DIR"
}

WORKSPACE_FLAGS=(--subscription "$SUBSCRIPTION_ID" --resource-group "$RESOURCE_GROUP"
  --workspace "$WORKSPACE_NAME")

# dry_run_flag: --dry-run when DRY_RUN=1.
dry_run_flag() {
  if [ "$DRY_RUN" = 1 ]; then echo --dry-run; fi
}

# prepare_data KIND: WORK_DIR/data with MLTable folders, from FRIDGE_ZIP or the digits sample.
# KIND is multiclass or multilabel.
prepare_data() {
  if [ -n "$FRIDGE_ZIP" ]; then
    deitkit data import "$FRIDGE_ZIP" --out "$WORK_DIR/data"
  else
    local sample=digits
    if [ "$1" = multilabel ]; then sample=digits-multilabel; fi
    deitkit data sample "$sample" --out "$WORK_DIR/sample"
    deitkit data import "$WORK_DIR/sample" --out "$WORK_DIR/data" --split 0.2
  fi
  TRAIN_DATA="$WORK_DIR/data/training-mltable-folder"
  VALIDATION_DATA="$WORK_DIR/data/validation-mltable-folder"
}

# upload_data NAME: register WORK_DIR/data in the workspace (deitkit azure data upload): the
# images as NAME-images, MLTables of their azureml:// URLs as NAME-training, NAME-validation.
# Sets TRAIN_REF and VALIDATION_REF (on a dry run: NAME-training@latest, ...).
upload_data() {
  if [ "$DRY_RUN" = 1 ]; then
    deitkit azure data upload "$WORK_DIR/data" --name "$1" "${WORKSPACE_FLAGS[@]}" --dry-run
    TRAIN_REF="azureml:$1-training@latest"
    VALIDATION_REF="azureml:$1-validation@latest"
    return
  fi
  local uploaded
  uploaded=$(deitkit azure data upload "$WORK_DIR/data" --name "$1" "${WORKSPACE_FLAGS[@]}")
  echo "$uploaded"
  TRAIN_REF=$(sed -n 's/^training_data: //p' <<<"$uploaded")
  VALIDATION_REF=$(sed -n 's/^validation_data: //p' <<<"$uploaded")
}

# image_folder: WORK_DIR/data's image folder (where the imported annotations point).
image_folder() {
  local top
  top=$(sed -n '1s/.*"image_url": *"\([^"/]*\)\/.*/\1/p' "$WORK_DIR/data/train_annotations.jsonl")
  echo "$WORK_DIR/data/$top"
}

# first_images N: the first N validation image paths, one per line.
first_images() {
  head -n "$1" "$WORK_DIR/data/validation_annotations.jsonl" \
    | sed -e 's/.*"image_url": *"\([^"]*\)".*/\1/' -e "s|^|$WORK_DIR/data/|"
}

# train_quick_model TASK: fine-tune MODEL on WORK_DIR/data into WORK_DIR/finetune.
train_quick_model() {
  deitkit finetune --model "$MODEL" --task "$1" \
    --train "$TRAIN_DATA" --validation "$VALIDATION_DATA" --output "$WORK_DIR/finetune" \
    --epochs "$EPOCHS" --image-size "$IMAGE_SIZE" --learning-rate "$LEARNING_RATE" \
    --augmentations "$AUGMENTATIONS"
}

# start_local_endpoint MODEL_DIR: deitkit serve on 127.0.0.1:PORT; sets ENDPOINT_URL.
# The server is stopped when the script exits, whatever happens.
start_local_endpoint() {
  deitkit serve --model "$1" --port "$PORT" >"$WORK_DIR/server.log" 2>&1 &
  SERVER_PID=$!
  trap stop_local_endpoint EXIT
  ENDPOINT_URL="http://127.0.0.1:$PORT"
  for _ in $(seq 1 180); do
    if curl -fs "$ENDPOINT_URL/" >/dev/null 2>&1; then
      echo "local endpoint: $ENDPOINT_URL (azureml-inference-server-http)"
      return 0
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    sleep 1
  done
  echo "error: the local endpoint did not start; its log:" >&2
  cat "$WORK_DIR/server.log" >&2
  exit 1
}

stop_local_endpoint() {
  if [ -n "${SERVER_PID:-}" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}

# score FILE: POST the JSON body in FILE to the local endpoint; print the answer.
score() {
  curl -fsS -H 'Content-Type: application/json' --data @"$1" "$ENDPOINT_URL/score"
  echo
}

# quick_model: MODEL_DIR if set, else fine-tune MODEL on the sample data first (multiclass).
quick_model() {
  if [ -n "${MODEL_DIR:-}" ]; then
    echo "$MODEL_DIR"
    return
  fi
  train_quick_model image-classification >&2
  echo "$WORK_DIR/finetune/mlflow_model"
}

# finetune_sample TASK KIND: the fine-tuning samples' flow (KIND: multiclass or multilabel).
finetune_sample() {
  local task=$1 kind=$2
  prepare_data "$kind"
  deitkit data validate "$TRAIN_DATA" --task "$task"
  if [ "$TARGET" = azure ]; then
    # Azure reads only what uploads: the images as a data asset, MLTables of their URLs.
    upload_data "${DATA_NAME:-deitkit-$kind}"
    # Azure's pipeline: fine-tune, evaluate and package on a GPU size from the allow-list;
    # the training environment is registered first when the workspace lacks its version.
    # shellcheck disable=SC2046  # dry_run_flag is one word or none
    deitkit azure finetune --task "$task" --training-data "$TRAIN_REF" \
      --validation-data "$VALIDATION_REF" --model-name "$HUB_MODEL" \
      --instance-type "$FINETUNE_SKU" "${WORKSPACE_FLAGS[@]}" $(dry_run_flag)
    echo "then: register the job's mlflow_model_folder output and deploy it (the endpoint samples)"
    return
  fi
  if [ "$TARGET" = azure-cli ]; then
    finetune_with_az "$kind" "${DATA_NAME:-deitkit-$kind}"
    return
  fi
  train_quick_model "$task"
  deitkit evaluate --model "$WORK_DIR/finetune/mlflow_model" --data "$VALIDATION_DATA" \
    --output "$WORK_DIR/evaluation"
  start_local_endpoint "$WORK_DIR/finetune/mlflow_model"
  local images
  mapfile -t images < <(first_images 2)
  deitkit request "${images[@]}" --output "$WORK_DIR/request.json"
  score "$WORK_DIR/request.json" | tee "$WORK_DIR/response.json"
}
