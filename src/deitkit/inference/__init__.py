"""Inference shared by evaluation, the packaged model and the online and batch scorers."""

from deitkit.inference.checkpoint import CheckpointInfo, read_checkpoint
from deitkit.inference.classifier import MAX_BATCH_SIZE, Classifier
from deitkit.inference.inputs import FetchUrl, decode_input
from deitkit.inference.mlflow_layouts import ModelFiles, model_files
from deitkit.inference.packaged import load_classifier, load_packaged, packaged_checkpoint
from deitkit.inference.prediction import Prediction
from deitkit.inference.scoring import Item, Scored, score_batches, score_items
from deitkit.inference.threads import configure_threads
from deitkit.tasks import check_threshold, check_top_k

__all__ = [
    "MAX_BATCH_SIZE",
    "CheckpointInfo",
    "Classifier",
    "FetchUrl",
    "Item",
    "ModelFiles",
    "Prediction",
    "Scored",
    "check_threshold",
    "check_top_k",
    "configure_threads",
    "decode_input",
    "load_classifier",
    "load_packaged",
    "model_files",
    "packaged_checkpoint",
    "read_checkpoint",
    "score_batches",
    "score_items",
]
