"""deitkit.azure.local batch jobs: Azure's parallel-run loop (init once, run per mini-batch,
append_row output, retries, timeouts, error_threshold) around small fake scoring scripts."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from deitkit.azure.local import LocalJobError, run_local_batch
from deitkit.azure.local.batch_worker import EXIT_INIT_FAILED, EXIT_THRESHOLD, work
from deitkit.cli.main import cli
from deitkit.errors import ConfigError

SCRIPT = """
import os
from pathlib import Path

import pandas as pd

calls = []


def init():
    global model
    model = os.environ.get("AZUREML_MODEL_DIR", "")


def run(mini_batch):
    calls.append(list(mini_batch))
    names = [Path(p).name for p in mini_batch]
    BODY
"""


def _script(tmp_path: Path, body: str, monkeypatch) -> Path:
    monkeypatch.setattr(sys, "path", list(sys.path))  # load_script puts its folder first
    path = tmp_path / "code" / f"score_{abs(hash((str(tmp_path), body)))}.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(SCRIPT.replace("BODY", body))
    return path


def _job(tmp_path: Path, script: Path, batches, **settings) -> dict:
    job = {
        "scoring_script": str(script),
        "mini_batches": batches,
        "output_file": str(tmp_path / "predictions.csv"),
        "error_threshold": -1,
        "max_retries": 0,
        "timeout_s": None,
        "summary_file": str(tmp_path / "summary.json"),
    }
    return {**job, **settings}


def test_a_list_appends_one_str_line_per_element(tmp_path, monkeypatch):
    script = _script(tmp_path, "return [f'{n},ok' for n in names]", monkeypatch)

    code, summary = work(_job(tmp_path, script, [["a/1.png", "a/2.png"], ["b/3.png"]]))

    assert code == 0 and summary["succeeded"] == 3 and summary["failed"] == 0
    assert (tmp_path / "predictions.csv").read_text() == "1.png,ok\n2.png,ok\n3.png,ok\n"


def test_a_dataframe_appends_space_separated_rows_without_header_or_index(tmp_path, monkeypatch):
    body = "return pd.DataFrame({'file': names, 'label': ['a can', 'milk'], 'p': [0.5, 1.0]})"
    script = _script(tmp_path, body, monkeypatch)

    work(_job(tmp_path, script, [["x/1.png", "x/2.png"]]))

    assert (tmp_path / "predictions.csv").read_text() == '1.png "a can" 0.5\n2.png milk 1.0\n'
    read = pd.read_csv(tmp_path / "predictions.csv", sep=" ", header=None)
    assert read.values.tolist() == [["1.png", "a can", 0.5], ["2.png", "milk", 1.0]]


def test_missing_results_count_as_failed_files_and_the_threshold_stops_the_job(
    tmp_path, monkeypatch
):
    script = _script(tmp_path, "return [n for n in names if n != 'bad.png']", monkeypatch)
    batches = [["1.png", "bad.png"], ["2.png"], ["3.png"]]

    code, summary = work(_job(tmp_path, script, batches, error_threshold=-1))
    assert code == 0 and (summary["succeeded"], summary["failed"]) == (3, 1)

    (tmp_path / "predictions.csv").unlink()
    code, summary = work(_job(tmp_path, script, batches, error_threshold=0))
    assert code == EXIT_THRESHOLD and summary["mini_batches"] == 1  # stopped at once
    assert summary["errors"][-1] == {"error_threshold": "1 failed files exceed 0"}


def test_a_raising_mini_batch_is_retried_then_all_its_files_fail(tmp_path, monkeypatch):
    body = "if 'bad.png' in names: raise ValueError('cannot score ' + names[0])\n    return names"
    script = _script(tmp_path, body, monkeypatch)
    module_name = script.stem

    code, summary = work(
        _job(tmp_path, script, [["bad.png", "1.png"], ["2.png"]], max_retries=2, error_threshold=2)
    )

    assert code == 0 and (summary["succeeded"], summary["failed"]) == (1, 2)
    calls = sys.modules[module_name].calls
    assert calls == [["bad.png", "1.png"]] * 3 + [["2.png"]]  # 1 try + 2 retries
    assert summary["errors"][0]["error"] == "ValueError: cannot score bad.png"
    assert (tmp_path / "predictions.csv").read_text() == "2.png\n"


def test_a_slow_mini_batch_times_out_and_the_wrong_return_type_fails(tmp_path, monkeypatch):
    body = "import time\n    if 'slow' in names[0]: time.sleep(5)\n    return {'not': 'a list'}"
    script = _script(tmp_path, body, monkeypatch)

    code, summary = work(_job(tmp_path, script, [["slow.png"], ["x.png"]], timeout_s=0.2))

    assert code == 0 and summary["failed"] == 2
    errors = [e["error"] for e in summary["errors"]]
    assert errors[0].startswith("MiniBatchTimeout: run() took longer than 0.2 s")
    assert errors[1] == "TypeError: run() returned dict; expected a list or a DataFrame"


def test_an_init_failure_fails_the_job(tmp_path, monkeypatch):
    script = _script(tmp_path, "return names", monkeypatch)
    text = script.read_text().replace("global model", "raise RuntimeError('no model')")
    script.write_text(text)

    code, summary = work(_job(tmp_path, script, [["1.png"]]))

    assert code == EXIT_INIT_FAILED and "RuntimeError: no model" in summary["errors"][0]["init"]


DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/modelBatchDeployment.schema.json
name: fake
endpoint_name: fake-endpoint
type: model
model: azureml:fake-model@latest
environment: azureml:fake-env@latest
code_configuration:
  code: ./code
  scoring_script: score.py
compute: azureml:cluster
mini_batch_size: 2
output_action: append_row
output_file_name: out.csv
error_threshold: ERROR_THRESHOLD
environment_variables:
  FROM_DEPLOYMENT: "yes"
"""

SCORE = """
import os
from pathlib import Path


def init():
    global root
    root = Path(os.environ["AZUREML_MODEL_DIR"])


def run(mini_batch):
    (folder,) = os.listdir(root)  # the registered folder is the root's one subfolder
    weights = (root / folder / "weights.txt").read_text().strip()
    out = os.environ["AZUREML_BI_OUTPUT_PATH"]
    rows = []
    for path in mini_batch:
        if Path(path).name.startswith("bad"):
            continue  # not returned: a failed file
        copied = Path(path).is_relative_to(Path.cwd().parent.parent)  # under the job folder
        fields = [Path(path).name, weights, os.environ["FROM_DEPLOYMENT"], out, Path.cwd().name]
        rows.append(",".join([*fields, str(copied)]))
    return rows
"""


def _deployment(tmp_path: Path, error_threshold: int) -> Path:
    (tmp_path / "deploy/code").mkdir(parents=True)
    (tmp_path / "deploy/code/score.py").write_text(SCORE)
    path = tmp_path / "deploy/deployment.yml"
    path.write_text(DEPLOYMENT.replace("ERROR_THRESHOLD", str(error_threshold)))
    (tmp_path / "model").mkdir()
    (tmp_path / "model/weights.txt").write_text("w1\n")
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    for name in ("a.png", "b.png", "sub/c.png", "bad.png"):
        (images / name).write_text(name)
    return path


def test_a_batch_deployment_runs_its_scoring_script_in_a_fresh_process(tmp_path):
    deployment = _deployment(tmp_path, error_threshold=-1)
    lines = []

    run = run_local_batch(
        deployment,
        model=tmp_path / "model",
        input=tmp_path / "images",
        output=tmp_path / "out",
        work_dir=tmp_path / "runs",
        echo=lines.append,
    )

    assert run.output_file == tmp_path / "out/out.csv"
    rows = run.output_file.read_text().splitlines()
    out = str(tmp_path / "out")
    # Sorted paths: a.png, b.png | bad.png, sub/c.png; files are read from the job's copy.
    assert rows == [f"{n},w1,yes,{out},wd,True" for n in ("a.png", "b.png", "c.png")]
    assert run.summary["succeeded"] == 3 and run.summary["failed"] == 1
    assert run.summary["mini_batches"] == 2
    record = (run.folder / "job.json").read_text()
    assert '"status": "Completed"' in record and "fake-model/1" in record
    assert lines[0].endswith("4 files in 2 mini-batches")


def test_a_batch_job_past_its_error_threshold_fails(tmp_path):
    deployment = _deployment(tmp_path, error_threshold=0)

    with pytest.raises(LocalJobError, match="1 failed files exceed 0"):
        run_local_batch(
            deployment,
            model=tmp_path / "model",
            input=tmp_path / "images",
            output=tmp_path / "out",
            work_dir=tmp_path / "runs",
        )


def test_a_batch_job_refuses_an_output_folder_in_use(tmp_path):
    deployment = _deployment(tmp_path, error_threshold=-1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out/old.csv").write_text("x")

    with pytest.raises(ConfigError, match="not an empty folder"):
        run_local_batch(
            deployment, model=tmp_path / "model", input=tmp_path / "images", output=tmp_path / "out"
        )


def test_the_command_line_runs_a_batch_deployment(tmp_path):
    deployment = _deployment(tmp_path, error_threshold=-1)

    result = CliRunner().invoke(
        cli,
        ["azure", "run-local-batch", str(deployment), "--model", str(tmp_path / "model"),
         "--input", str(tmp_path / "images"), "--output", str(tmp_path / "out"),
         "--work-dir", str(tmp_path / "runs")],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "3 files succeeded, 1 failed" in result.output
    assert result.output.rstrip().endswith(f"output  {tmp_path / 'out/out.csv'}")
