"""What a fine-tuning run leaves in OUT; a finished run is never rewritten without `--overwrite`.

`metrics.json` is written last, and whole, so an OUT that holds it holds a finished run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from deitkit.errors import ConfigError
from deitkit.job_run import ARTIFACTS_DIR, STORE_FILE, job_run_id
from deitkit.training.checkpoints import CHECKPOINTS_DIR, LABELS_FILE
from deitkit.workdir import is_staging

log = logging.getLogger(__name__)

MODEL_DIR = "model"  # the fine-tuned Hugging Face checkpoint (Azure's pytorch_model_folder)
MLFLOW_MODEL_DIR = "mlflow_model"  # the packaged model (Azure's mlflow_model_folder)
EVALUATION_DIR = "evaluation"  # the packaged model evaluated on the validation set: report.html
METRICS_FILE = "metrics.json"
CONFIG_FILE = "finetune_config.json"
# metrics.json's key for the MLflow run the metrics went to (an Azure ML job's own run).
RUN_ID_KEY = "mlflow_run_id"
# metrics.json's prefix for the packaged model's metrics on the validation set, as it is served.
SERVED_PREFIX = "served_"
# Everything a run writes into OUT, metrics.json last: `clear_run` removes it last, so a
# clearing cut off midway still leaves a finished run that a rerun refuses to resume.
RUN_FILES = (
    CHECKPOINTS_DIR,
    MODEL_DIR,
    MLFLOW_MODEL_DIR,
    EVALUATION_DIR,
    CONFIG_FILE,
    LABELS_FILE,
    ARTIFACTS_DIR,
)


def is_finished(out: Path) -> bool:
    """True when `out` holds a finished run (its metrics.json)."""
    return (out / METRICS_FILE).is_file()


def saved_metrics(out: Path) -> dict[str, Any]:
    """The metrics.json of the finished run in `out`."""
    return json.loads((out / METRICS_FILE).read_text(encoding="utf-8"))


def finished_by_this_job(out: Path) -> bool:
    """True when the finished run in `out` was logged to this Azure ML job's own MLflow run.

    Azure ML runs a job again in the same output folder when its node is preempted; a retry
    that comes after training finished (during the component's copy of the packaged model,
    say) finds its own finished run there. Outside a job (no `MLFLOW_RUN_ID`) this is False.
    """
    job = job_run_id()
    if job is None:
        return False
    try:
        return saved_metrics(out).get(RUN_ID_KEY) == job
    except (OSError, ValueError, AttributeError):
        return False


def refuse_finished(out: Path) -> None:
    """Raise ConfigError: `out` holds a finished run, which this run would rewrite."""
    raise ConfigError(
        f"--output {out} holds a finished fine-tune ({METRICS_FILE}) and was left as it is; "
        "pass --overwrite to replace it with a new run, or choose another --output"
    )


def check_overwrite_allowed() -> None:
    """Refuse `--overwrite` under a multi-process launch, where ranks would clear each other.

    Each process of a torchrun or Azure ML distributed job runs the same command; one could
    remove what another has already written for the new run.
    """
    world = os.environ.get("WORLD_SIZE", "1")
    if world.isdigit() and int(world) > 1:
        raise ConfigError(
            f"--overwrite runs in a single process only (WORLD_SIZE={world}): clear --output "
            "(or choose a new one) before a distributed run"
        )


def clear_run(out: Path) -> list[str]:
    """Remove what a previous run wrote into `out`; anything else in it is left alone.

    Returns:
        The names removed, in the order removed (metrics.json last).
    """
    if not out.is_dir():
        return []
    names = set(RUN_FILES)
    names |= {p.name for p in out.iterdir() if p.name.startswith(STORE_FILE) or is_staging(p)}
    removed = []
    for name in [*sorted(names), METRICS_FILE]:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(name)
    if removed:
        log.info("--overwrite: removed %s from %s", ", ".join(removed), out)
    return removed
