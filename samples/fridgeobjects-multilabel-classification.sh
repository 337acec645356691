#!/usr/bin/env bash
# Multilabel fine-tuning on multilabelFridgeObjects (or the digits-multilabel sample).
#
# TARGET=local (default) runs everything here: data → validate → fine-tune (sigmoid, BCE,
# metric iou) → evaluate → the local online endpoint answers the model card's request.
# TARGET=azure uploads the data and submits Azure ML's pipeline (components/pipeline_multilabel);
# set SUBSCRIPTION_ID, RESOURCE_GROUP and WORKSPACE_NAME (DRY_RUN=1 prints the entities
# instead). TARGET=azure-cli: the same with `az ml` and samples/azure-cli/*.yml.
# FRIDGE_ZIP=path/to/multilabelFridgeObjects.zip uses Azure's dataset; see common.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

start_sample fridgeobjects-multilabel-classification
finetune_sample image-classification-multilabel multilabel
