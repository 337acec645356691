#!/usr/bin/env bash
# Multiclass fine-tuning on fridgeObjects (or the digits sample), then evaluate and serve.
#
# TARGET=local (default) runs everything here: data → validate → fine-tune → evaluate →
# the local online endpoint answers the model card's request. TARGET=azure uploads the data
# (deitkit azure data upload) and submits Azure ML's fine-tuning pipeline
# (components/pipeline_multiclass) with the repository's YAMLs; set SUBSCRIPTION_ID,
# RESOURCE_GROUP and WORKSPACE_NAME (DRY_RUN=1 prints the entities instead). TARGET=azure-cli
# does the same with `az ml data create` and `az ml job create --file
# samples/azure-cli/finetune-multiclass-pipeline.yml` (DRY_RUN=1 prints the commands).
# FRIDGE_ZIP=path/to/fridgeObjects.zip uses Azure's dataset; other parameters: common.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

start_sample fridgeobjects-multiclass-classification
finetune_sample image-classification multiclass
