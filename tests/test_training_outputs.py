"""OUT of a fine-tuning run: finished when metrics.json is there; --overwrite clears only ours."""

from __future__ import annotations

import pytest

from deitkit.errors import ConfigError
from deitkit.training.outputs import (
    METRICS_FILE,
    check_overwrite_allowed,
    clear_run,
    finished_by_this_job,
    is_finished,
    refuse_finished,
)


def _previous_run(out):
    """The files a run leaves in OUT (contents do not matter here)."""
    for folder in ("checkpoints/checkpoint-2", "model", "mlflow_model", "mlartifacts/1"):
        (out / folder).mkdir(parents=True)
        (out / folder / "file").write_text("x")
    for name in ("finetune_config.json", "labels.json", "mlflow.db", "mlflow.db-journal",
                 ".labels.json.123.tmp", METRICS_FILE):  # fmt: skip
        (out / name).write_text("{}")
    return out


def test_a_run_is_finished_once_its_metrics_are_written(tmp_path):
    assert not is_finished(tmp_path / "missing")
    (tmp_path / "checkpoints").mkdir()
    assert not is_finished(tmp_path)  # checkpoints alone: a run to resume
    (tmp_path / METRICS_FILE).write_text("{}")
    assert is_finished(tmp_path)


def test_the_refusal_names_the_folder_and_the_way_out(tmp_path):
    with pytest.raises(ConfigError) as err:
        refuse_finished(tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message and "--overwrite" in message and "\n" not in message


@pytest.mark.timeout(30)
def test_clear_run_removes_the_runs_files_last_of_all_its_metrics(tmp_path):
    out = _previous_run(tmp_path / "out")
    (out / "notes.txt").write_text("mine")
    (out / "data").mkdir()
    removed = clear_run(out)
    assert removed[-1] == METRICS_FILE  # a clearing cut off midway still reads as finished
    assert {p.name for p in out.iterdir()} == {"notes.txt", "data"}
    assert clear_run(tmp_path / "missing") == []


def test_clear_run_removes_a_symlink_not_what_it_points_to(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("x")
    out = tmp_path / "out"
    out.mkdir()
    (out / "model").symlink_to(elsewhere, target_is_directory=True)
    clear_run(out)
    assert not (out / "model").exists() and (elsewhere / "keep").is_file()


def test_overwrite_is_refused_under_a_distributed_launch(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    check_overwrite_allowed()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="WORLD_SIZE=2"):
        check_overwrite_allowed()


def test_only_this_jobs_own_finished_run_counts_as_a_retry(tmp_path, monkeypatch):
    (tmp_path / METRICS_FILE).write_text('{"mlflow_run_id": "job-1"}')
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    assert not finished_by_this_job(tmp_path)  # outside a job
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("MLFLOW_RUN_ID", "job-2")
    assert not finished_by_this_job(tmp_path)  # another job's run
    monkeypatch.setenv("MLFLOW_RUN_ID", "job-1")
    assert finished_by_this_job(tmp_path)
    (tmp_path / METRICS_FILE).write_text("[1, 2")  # unreadable: not a retry
    assert not finished_by_this_job(tmp_path)
