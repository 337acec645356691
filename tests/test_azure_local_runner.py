"""deitkit.azure.local on tiny bash components: mounts, records, environment, processes,
pipeline bindings, azureml: references, and bad input refused before anything runs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from deitkit.azure.local import LocalJobError, run_local
from deitkit.azure.local.records import read_record
from deitkit.cli.main import cli
from deitkit.data.datastore import datastore_for
from deitkit.data.references import DATASTORE_ROOT_ENV, resolve_reference
from deitkit.errors import ConfigError, DataError

COMMAND_SCHEMA = "https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json"
PIPELINE_SCHEMA = "https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json"

ECHO = f"""\
$schema: {COMMAND_SCHEMA}
type: command
name: echo
version: "1"
environment: azureml:deitkit-image-classification-training@latest
inputs:
  data: {{type: uri_folder}}
  word: {{type: string}}
  times: {{type: integer, optional: true, default: 2}}
  loud: {{type: boolean, optional: true}}
outputs:
  out: {{type: uri_folder}}
command: >-
  ls ${{{{inputs.data}}}} > ${{{{outputs.out}}}}/listing.txt
  && echo ${{{{inputs.word}}}} $[[--times ${{{{inputs.times}}}}]] $[[--loud ${{{{inputs.loud}}}}]]
  > ${{{{outputs.out}}}}/said.txt
  && env > ${{{{outputs.out}}}}/env.txt && pwd > ${{{{outputs.out}}}}/pwd.txt
"""


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory) -> str:
    """One MLflow store for every run here (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.getbasetemp() / 'mlflow.db'}"


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def _component(folder: Path, name: str, command: str, *, extra: str = "") -> Path:
    """A command component with input `data` (uri_folder) and output `out`."""
    return _write(
        folder / name,
        "spec.yaml",
        f"$schema: {COMMAND_SCHEMA}\ntype: command\nname: {name}\nversion: '1'\n"
        "environment: azureml:env@latest\n"
        "inputs:\n  data: {type: uri_folder, optional: true}\n"
        "outputs:\n  out: {type: uri_folder}\n"
        f"{extra}command: >-\n  {command}\n",
    )


@pytest.fixture
def data(tmp_path: Path) -> Path:
    _write(tmp_path / "data", "a.txt", "a")
    return tmp_path / "data"


def test_a_command_job_runs_with_mounts_defaults_environment_and_a_record(
    tmp_path, data, tracking_uri
):
    spec = _write(tmp_path / "echo", "spec.yaml", ECHO)
    run = run_local(
        spec,
        {"data": str(data), "word": "hello"},
        work_dir=tmp_path / "runs",
        tracking_uri=tracking_uri,
        environment_variables={"EXTRA": "1"},
    )

    out = run.outputs["out"]
    assert (out / "said.txt").read_text() == "hello --times 2\n"  # default in, empty group out
    assert (out / "listing.txt").read_text() == "a.txt\n"
    assert out == run.folder / "cap/data-capability/wd/out"
    env = dict(
        line.split("=", 1) for line in (out / "env.txt").read_text().splitlines() if "=" in line
    )
    assert env["AZUREML_RUN_ID"] == run.run_id and env["EXTRA"] == "1"
    assert env["MLFLOW_TRACKING_URI"] == tracking_uri and env["MLFLOW_RUN_ID"]
    assert "AZUREML_MODEL_DIR" not in env and "RANK" not in env  # no distribution here
    assert (out / "pwd.txt").read_text().strip() == str(run.folder / "exe/wd")
    record = read_record(run.folder / "job.json")
    assert record["status"] == "Completed" and record["exit_code"] == 0
    assert record["inputs"]["data"]["from"] == str(data)
    assert record["inputs"]["data"]["value"] == str(
        run.folder / "cap/data-capability/wd/INPUT_data"
    )
    assert record["inputs"]["loud"]["value"] is None
    assert "--loud" not in record["command"] and record["environment"]["EXTRA"] == "1"
    assert Path(record["processes"][0]["log"]).name == "std_log.txt"
    from mlflow.tracking import MlflowClient

    assert MlflowClient(tracking_uri).get_run(env["MLFLOW_RUN_ID"]).info.status == "FINISHED"


def test_the_input_copy_holds_only_that_folder_and_is_read_only(tmp_path, data, tracking_uri):
    _write(tmp_path, "beside.txt", "not uploaded")
    spec = _component(
        tmp_path,
        "writer",
        "ls ${{inputs.data}}/.. > ${{outputs.out}}/up.txt; touch ${{inputs.data}}/new.txt",
    )

    with pytest.raises(LocalJobError, match=r"wrote into its input|exited with 1") as err:
        run_local(spec, {"data": data}, work_dir=tmp_path / "runs", tracking_uri=tracking_uri)

    record = read_record(err.value.record)
    assert record["status"] == "Failed"
    up = Path(record["outputs"]["out"]["path"]) / "up.txt"
    assert up.read_text().split() == ["INPUT_data", "out"]  # nothing beside the input


def test_a_failing_command_fails_the_job_with_its_exit_code_and_log_tail(tmp_path, tracking_uri):
    spec = _component(tmp_path, "boom", "echo first; echo going down >&2; exit 3")

    with pytest.raises(LocalJobError, match=r"step boom failed: the command exited with 3") as err:
        run_local(spec, work_dir=tmp_path / "runs", tracking_uri=tracking_uri)

    assert str(err.value).endswith("std_log.txt:\nfirst\ngoing down")
    record = read_record(err.value.record)
    assert record["status"] == "Failed" and record["exit_code"] == 3
    assert read_record(err.value.record.parent / "run.json")["status"] == "Failed"
    from mlflow.tracking import MlflowClient

    run_id = record["environment"]["MLFLOW_RUN_ID"]
    assert MlflowClient(tracking_uri).get_run(run_id).info.status == "FAILED"


def test_pytorch_distribution_starts_one_process_per_rank(tmp_path, tracking_uri):
    spec = _component(
        tmp_path,
        "ranks",
        "echo $RANK $LOCAL_RANK $WORLD_SIZE $NODE_RANK $MASTER_ADDR $MASTER_PORT"
        " > ${{outputs.out}}/rank_$RANK.txt",
        extra="distribution: {type: pytorch, process_count_per_instance: 3}\n",
    )

    run = run_local(spec, work_dir=tmp_path / "runs", tracking_uri=tracking_uri)

    lines = [(run.outputs["out"] / f"rank_{r}.txt").read_text().split() for r in range(3)]
    port = lines[0][5]
    assert lines == [[str(r), str(r), "3", "0", "127.0.0.1", port] for r in range(3)]
    logs = [Path(p["log"]).name for p in run.jobs["ranks"].record["processes"]]
    assert logs == [f"std_log_process_{r}.txt" for r in range(3)]


def test_a_failing_rank_fails_the_job_and_stops_the_others(tmp_path, tracking_uri):
    spec = _component(
        tmp_path,
        "rank_fails",
        'if [ "$RANK" = 1 ]; then echo rank one fails; exit 5; fi; sleep 60',
        extra="distribution: {type: pytorch, process_count_per_instance: 2}\n",
    )
    start = time.monotonic()

    with pytest.raises(LocalJobError, match="process 1 exited with 5") as err:
        run_local(spec, work_dir=tmp_path / "runs", tracking_uri=tracking_uri)

    assert time.monotonic() - start < 30
    assert "rank one fails" in str(err.value)
    codes = [p["exit_code"] for p in read_record(err.value.record)["processes"]]
    assert codes[1] == 5 and codes[0] != 0


def test_a_job_past_its_time_limit_is_stopped(tmp_path, tracking_uri):
    spec = _component(tmp_path, "slow", "sleep 60")

    with pytest.raises(LocalJobError, match="ran past the time limit"):
        run_local(spec, work_dir=tmp_path / "runs", tracking_uri=tracking_uri, timeout_s=1)


def _pipeline(tmp_path: Path, jobs: str, *, inputs: str = "", outputs: str = "") -> Path:
    return _write(
        tmp_path / "pipe",
        "spec.yaml",
        f"$schema: {PIPELINE_SCHEMA}\ntype: pipeline\nname: pipe\n"
        "inputs:\n  data: {type: uri_folder}\n"
        f"  word: {{type: string, optional: true, default: hi}}\n{inputs}"
        f"outputs:\n  result: {{type: uri_folder}}\n{outputs}"
        f"jobs:\n{jobs}",
    )


def test_pipeline_steps_run_in_dependency_order_with_outputs_bound_to_inputs(
    tmp_path, data, tracking_uri
):
    _component(tmp_path, "first", "cp ${{inputs.data}}/a.txt ${{outputs.out}}/b.txt")
    _component(
        tmp_path,
        "second",
        "cat ${{inputs.data}}/b.txt ${{inputs.data}}/b.txt > ${{outputs.out}}/c.txt",
    )
    # The consumer is listed first: order comes from the bindings, not the YAML.
    spec = _pipeline(
        tmp_path,
        "  use:\n    type: command\n    component: ../second/spec.yaml\n"
        "    inputs: {data: '${{parent.jobs.make.outputs.out}}'}\n"
        "    outputs: {out: '${{parent.outputs.result}}'}\n"
        "  make:\n    type: command\n    component: ../first/spec.yaml\n"
        "    inputs: {data: '${{parent.inputs.data}}'}\n",
    )

    run = run_local(spec, {"data": data}, work_dir=tmp_path / "runs", tracking_uri=tracking_uri)

    assert list(run.jobs) == ["make", "use"]
    made = run.jobs["make"].outputs["out"]
    assert run.jobs["use"].record["inputs"]["data"]["from"] == "make.outputs.out"
    assert (run.outputs["result"] / "c.txt").read_text() == "a" * 2
    assert run.outputs["result"] == run.jobs["use"].outputs["out"]
    assert made == run.folder / "make/cap/data-capability/wd/out"
    summary = read_record(run.folder / "run.json")
    assert summary["status"] == "Completed" and summary["outputs"]["result"] == str(
        run.outputs["result"]
    )
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    child = client.get_run(run.jobs["use"].record["environment"]["MLFLOW_RUN_ID"])
    assert child.data.tags["mlflow.parentRunId"] == summary["mlflow_run_id"]


def _manifest(tmp_path: Path, version: str = "1") -> Path:
    _component(tmp_path, "indexed", "echo indexed > ${{outputs.out}}/who.txt")
    return _write(
        tmp_path,
        "assets.yaml",
        "models:\n  - {name: m, version: 1}\n"
        f"assets:\n  - {{type: component, name: indexed, version: '{version}', path: indexed}}\n",
    )


def test_azureml_component_references_resolve_through_the_manifest(tmp_path, data, tracking_uri):
    from deitkit.assets.manifest import load_manifest

    manifest = load_manifest(_manifest(tmp_path))
    spec = _pipeline(
        tmp_path,
        "  a:\n    type: command\n    component: azureml:indexed@latest\n"
        "    outputs: {out: '${{parent.outputs.result}}'}\n"
        "  b:\n    type: command\n    component: azureml:indexed:1\n",
    )

    run = run_local(
        spec,
        {"data": data},
        work_dir=tmp_path / "runs",
        tracking_uri=tracking_uri,
        manifest=manifest,
    )

    assert (run.outputs["result"] / "who.txt").read_text() == "indexed\n"
    assert run.jobs["b"].record["component"]["source"] == str(tmp_path / "indexed/spec.yaml")


@pytest.mark.parametrize(
    ("component", "message"),
    [
        ("azureml:indexed:2", r"has indexed version 1 only; refer to it as azureml:indexed@latest"),
        ("azureml:nothing@latest", r"indexes no component 'nothing'; known: indexed"),
        (
            "azureml://registries/azureml/components/x/labels/latest",
            "only local files and azureml:<name>@latest",
        ),
    ],
)
def test_unresolvable_component_references_are_refused(tmp_path, data, component, message):
    from deitkit.assets.manifest import load_manifest

    manifest = load_manifest(_manifest(tmp_path))
    spec = _pipeline(tmp_path, f"  a:\n    type: command\n    component: {component}\n")

    with pytest.raises(ConfigError, match=message):
        run_local(spec, {"data": data}, work_dir=tmp_path / "runs", manifest=manifest)
    assert not (tmp_path / "runs").exists()


def test_datastore_urls_are_read_from_the_local_datastore(tmp_path, tracking_uri):
    _write(tmp_path / "store/workspaceblobstore/LocalUpload/abc/imgs", "a.txt", "a")
    spec = _component(tmp_path, "ls", "ls ${{inputs.data}} > ${{outputs.out}}/ls.txt")

    run = run_local(
        spec,
        {"data": "azureml://datastores/workspaceblobstore/paths/LocalUpload/abc/imgs/"},
        datastore=tmp_path / "store",
        work_dir=tmp_path / "runs",
        tracking_uri=tracking_uri,
    )

    assert (run.outputs["out"] / "ls.txt").read_text() == "a.txt\n"
    env = run.jobs["ls"].record["environment"]
    assert env[DATASTORE_ROOT_ENV] == str(tmp_path / "store")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"word": "x"},
            r"--set data: input 'data' of .* is required \(a folder\) and has no value",
        ),
        (
            {"data": "DATA", "word": "x", "times": "many"},
            r"--set times: 'many' does not fit input 'times' \(integer\)",
        ),
        ({"data": "DATA", "word": "x", "loud": "yes"}, r"expected true or false"),
        (
            {"data": "DATA", "word": "x", "tims": "3"},
            r"--set tims: .* has no input 'tims'; its inputs: data, loud, times, word",
        ),
        ({"data": "DATA/a.txt", "word": "x"}, r"a uri_folder input takes a folder, not a file"),
        ({"data": "azureml://datastores/ds/paths/p/", "word": "x"}, r"needs --datastore DIR"),
        ({"data": "azureml:images:1", "word": "x"}, r"local paths and azureml://datastores"),
    ],
)
def test_bad_input_is_one_line_and_nothing_runs(tmp_path, data, given, message):
    spec = _write(tmp_path / "echo", "spec.yaml", ECHO)
    given = {k: v.replace("DATA", str(data)) for k, v in given.items()}

    with pytest.raises(ConfigError, match=message) as err:
        run_local(spec, given, work_dir=tmp_path / "runs")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        (
            "  a:\n    type: command\n    component: ../first/spec.yaml\n"
            "    inputs: {data: '${{parent.jobs.b.outputs.out}}'}\n"
            "  b:\n    type: command\n    component: ../first/spec.yaml\n"
            "    inputs: {data: '${{parent.jobs.a.outputs.out}}'}\n",
            "steps a, b depend on each other in a cycle",
        ),
        (
            "  a:\n    type: command\n    component: ../first/spec.yaml\n"
            "    resources: {instance_count: 2}\n",
            "instance_count 2: the local runner emulates one node",
        ),
        (
            "  a:\n    type: command\n    component: ../first/spec.yaml\n"
            "    inputs: {data: '${{parent.jobs.nope.outputs.out}}'}\n",
            "the pipeline has no step 'nope'",
        ),
        (
            "  a:\n    type: command\n    component: ../first/spec.yaml\n"
            "    inputs: {data: 'x_${{parent.inputs.data}}'}\n",
            "is not a binding the local runner supports",
        ),
        (
            "  a:\n    type: command\n    component: ../needs/spec.yaml\n",
            r"step a: input word: input 'word' of .* is required \(a string\)",
        ),
        (
            "  a:\n    type: command\n    component: ../needs/spec.yaml\n"
            "    inputs: {word: '${{parent.inputs.word}}', count: '${{parent.inputs.word}}'}\n",
            r"step a: input count: 'hi' does not fit input 'count' \(integer\)",
        ),
    ],
    ids=["cycle", "multi-node", "unknown-step", "mixed-text", "required", "wrong-type"],
)
def test_bad_pipelines_are_refused_before_any_step_runs(tmp_path, data, jobs, message):
    _component(tmp_path, "first", "echo > ${{outputs.out}}/x")
    _write(
        tmp_path / "needs",
        "spec.yaml",
        f"$schema: {COMMAND_SCHEMA}\ntype: command\nname: needs\nversion: '1'\n"
        "environment: azureml:env@latest\n"
        "inputs:\n  word: {type: string}\n  count: {type: integer, optional: true}\n"
        "command: echo ${{inputs.word}} $[[${{inputs.count}}]]\n",
    )
    spec = _pipeline(tmp_path, jobs)

    with pytest.raises(ConfigError, match=message):
        run_local(spec, {"data": data}, work_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_the_command_line_prints_one_line_and_exits_2_on_bad_input(tmp_path, data):
    spec = _write(tmp_path / "echo", "spec.yaml", ECHO)
    work = tmp_path / "runs"

    result = CliRunner().invoke(
        cli,
        ["azure", "run-local", str(spec), "--set", f"data={data}", "--set", "word=x",
         "--set", "times=2.5", "--work-dir", str(work)],
    )  # fmt: skip

    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1
    assert result.output.startswith("error: --set times: '2.5' does not fit input 'times'")
    assert not work.exists()


def test_the_command_line_runs_a_job_and_prints_its_outputs(tmp_path, data, tracking_uri):
    spec = _write(tmp_path / "echo", "spec.yaml", ECHO)

    result = CliRunner().invoke(
        cli,
        ["azure", "run-local", str(spec), "--set", f"data={data}", "--set", "word=x",
         "--set", "loud=TRUE", "--work-dir", str(tmp_path / "runs"),
         "--tracking-uri", tracking_uri],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    out = Path(result.output.splitlines()[-1].split()[-1])
    assert (out / "said.txt").read_text() == "x --times 2 --loud True\n"


def test_the_data_reader_resolves_datastore_urls_when_a_datastore_is_configured(
    tmp_path, monkeypatch
):
    image = _write(tmp_path / "store/ds/up/imgs", "a b.png", "x")
    root = tmp_path / "mltable"
    root.mkdir()
    url = "azureml://subscriptions/s/resourcegroups/g/workspaces/w/datastores/ds/paths/up/imgs/a%20b.png"
    monkeypatch.setenv(DATASTORE_ROOT_ENV, str(tmp_path / "store"))
    store = datastore_for([], root)
    assert store == tmp_path / "store"

    assert resolve_reference(url, base=root, root=root, datastore=store) == image
    with pytest.raises(DataError, match="no such file in the local datastore"):
        resolve_reference(url.replace("a%20b", "c"), base=root, root=root, datastore=store)
    with pytest.raises(DataError, match="must not climb"):
        resolve_reference(
            "azureml://datastores/ds/paths/../x.png", base=root, root=root, datastore=store
        )
    os.symlink(tmp_path / "outside.png", tmp_path / "store/ds/link.png")
    _write(tmp_path, "outside.png", "x")
    with pytest.raises(DataError, match="symlink pointing outside"):
        resolve_reference(
            "azureml://datastores/ds/paths/link.png", base=root, root=root, datastore=store
        )
    assert json.dumps(str(image))  # a plain path, usable by the readers


def test_nested_pipelines_run_as_outer_inner_steps(tmp_path, data, tracking_uri):
    _component(
        tmp_path, "first", "cp ${{inputs.data}}/* ${{outputs.out}}/ && touch ${{outputs.out}}/+"
    )
    _write(
        tmp_path / "inner",
        "spec.yaml",
        f"$schema: {PIPELINE_SCHEMA}\ntype: pipeline\nname: inner\n"
        "inputs:\n  data: {type: uri_folder}\noutputs:\n  copied: {type: uri_folder}\n"
        "jobs:\n  copy:\n    type: command\n    component: ../first/spec.yaml\n"
        "    inputs: {data: '${{parent.inputs.data}}'}\n"
        "    outputs: {out: '${{parent.outputs.copied}}'}\n",
    )
    spec = _pipeline(
        tmp_path,
        "  again:\n    type: command\n    component: ../first/spec.yaml\n"
        "    inputs: {data: '${{parent.jobs.sub.outputs.copied}}'}\n"
        "    outputs: {out: '${{parent.outputs.result}}'}\n"
        "  sub:\n    type: pipeline\n    component: ../inner/spec.yaml\n"
        "    inputs: {data: '${{parent.inputs.data}}'}\n",
    )

    run = run_local(spec, {"data": data}, work_dir=tmp_path / "runs", tracking_uri=tracking_uri)

    assert list(run.jobs) == ["sub/copy", "again"]
    assert run.jobs["sub/copy"].folder == run.folder / "sub/copy"
    assert run.jobs["again"].record["inputs"]["data"]["from"] == "sub/copy.outputs.out"
    assert sorted(p.name for p in run.outputs["result"].iterdir()) == ["+", "a.txt"]
