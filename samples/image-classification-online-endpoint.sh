#!/usr/bin/env bash
# Online endpoint: serve a packaged model and score the model card's request.
#
# TARGET=local (default): azureml-inference-server-http (the server Azure ML runs) on
# 127.0.0.1:PORT with deitkit's scoring script; the two request forms Azure documents.
# TARGET=azure: a managed online endpoint from endpoints/online/*.yml (Standard_DS3_v2, SKU
# gate first, the inference environment registered when missing), then the same request
# through Azure (DRY_RUN=1 prints the entities instead). TARGET=azure-cli: the same with
# `az ml online-endpoint create --file ...` and friends (DRY_RUN=1 prints those commands).
# MODEL_DIR=a packaged model (deitkit package / finetune output); unset: a quick fine-tune on
# the sample data first. Other parameters: common.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ENDPOINT_NAME="${ENDPOINT_NAME:-deitkit-online-sample}"

start_sample image-classification-online-endpoint
prepare_data multiclass
model=$(quick_model)
mapfile -t images < <(first_images 2)
deitkit request "${images[@]}" --output "$WORK_DIR/request.json"
deitkit request "${images[@]}" --form list --top-k 3 --output "$WORK_DIR/request-list.json"

if [ "$TARGET" = azure ]; then
  # shellcheck disable=SC2046  # dry_run_flag is one word or none
  deitkit azure deploy-online --endpoint "$ENDPOINT_NAME" --model "$model" \
    "${WORKSPACE_FLAGS[@]}" $(dry_run_flag)
  if [ "$DRY_RUN" != 1 ]; then
    deitkit azure invoke-online --endpoint "$ENDPOINT_NAME" --request "$WORK_DIR/request.json" \
      "${WORKSPACE_FLAGS[@]}"
    echo "delete it when done: az ml online-endpoint delete --name $ENDPOINT_NAME --yes"
  fi
  exit 0
fi

if [ "$TARGET" = azure-cli ]; then
  # The deployment's size is deployment.yml's (deitkit assets validate checks it).
  az_model "$model"
  az_environment deitkit-image-classification-inference
  run_command az ml online-endpoint create --file "$REPO_DIR/endpoints/online/endpoint.yml" \
    --set "name=$ENDPOINT_NAME" "${AZ_WORKSPACE[@]}"
  run_command az ml online-deployment create \
    --file "$REPO_DIR/endpoints/online/deployment.yml" \
    --set "endpoint_name=$ENDPOINT_NAME" "model=$MODEL_REF" "environment=$ENV_REF" \
    --all-traffic "${AZ_WORKSPACE[@]}"
  run_command az ml online-endpoint invoke --name "$ENDPOINT_NAME" \
    --request-file "$WORK_DIR/request.json" "${AZ_WORKSPACE[@]}"
  echo "delete it when done: az ml online-endpoint delete --name $ENDPOINT_NAME --yes"
  exit 0
fi

start_local_endpoint "$model"
echo "-- the model card's input_data split form: probs and labels per image"
score "$WORK_DIR/request.json" | tee "$WORK_DIR/response.json"
echo "-- the list form: the top 3 labels per image, best first"
score "$WORK_DIR/request-list.json" | tee "$WORK_DIR/response-list.json"
