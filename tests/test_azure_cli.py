"""`deitkit azure ...` end to end against a recording MLClient stand-in: no network, no login."""

from __future__ import annotations

import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from azure.ai.ml import (
    load_batch_deployment,
    load_batch_endpoint,
    load_compute,
    load_environment,
    load_job,
    load_model,
    load_online_deployment,
    load_online_endpoint,
)
from azure_mock import MockMLClient
from click.testing import CliRunner

from deitkit.azure import entities
from deitkit.cli.azure import azure
from deitkit.cli.main import cli

SUB = "12345678-90ab-cdef-1234-567890abcdef"
WORKSPACE = f"--subscription {SUB} --resource-group rg --workspace ws"
ONLINE = "deploy-online --endpoint deit-ep --model azureml:deit-fridge:3"
BATCH = "deploy-batch --endpoint deit-batch --model azureml:deit-fridge:3 --compute cpu-cluster"
FINETUNE = "finetune --training-data azureml:fridge-train:1 --validation-data azureml:fridge-val:1"
TRAINING_ENV = "deitkit-image-classification-training"
INFERENCE_ENV = "deitkit-image-classification-inference"


@pytest.fixture(scope="module")
def _cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("deitkit-cache")


@pytest.fixture(autouse=True)
def _staging_in_a_temporary_cache(_cache, monkeypatch):
    """Environment build contexts are staged here, not in the user's ~/.cache (reused)."""
    monkeypatch.setenv("DEITKIT_CACHE", str(_cache))


@pytest.fixture
def azure_cli(monkeypatch):
    """`azure_cli(COMMAND, *paths, client=None)` runs `deitkit azure COMMAND PATHS...`.

    `client` stands in for MLClient; without one, building a client fails the test.
    `azure_cli.connected` lists the workspaces a client was built for.
    """
    monkeypatch.setitem(cli.commands, "azure", azure)  # main registers it once merged
    connected: list = []

    def run(command: str, *paths: Path | str, client: MockMLClient | None = None):
        def connect(workspace, **kwargs):
            if client is None:
                raise AssertionError("a client was built in a run that must make no call")
            connected.append(workspace)
            return client

        monkeypatch.setattr("deitkit.azure.workspace.connect", connect)
        args = ["azure", *shlex.split(command), *map(str, paths)]
        return CliRunner().invoke(cli, args)

    run.connected = connected
    return run


def _documents(text: str, tmp_path: Path) -> list[Path]:
    """Each YAML document of `text` written to its own file, as a user would save them."""
    paths = []
    for i, doc in enumerate(yaml.safe_load_all(text)):
        path = tmp_path / f"doc{i}.yml"
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        paths.append(path)
    return paths


def _environment(path: Path, name: str):
    """The environment document at `path`, loaded; checked to be `name` at a content hash."""
    environment = load_environment(path)
    assert environment.name == name and environment.version not in (None, "auto")
    context = Path(environment.build.path)
    assert (context / environment.build.dockerfile_path).is_file()
    assert (context / "src" / "deitkit" / "__init__.py").is_file()  # what the Dockerfile copies
    return environment


def _repo_deployment(asset: str) -> SimpleNamespace:
    """The deployment.yml of the repository's endpoint asset, loaded as it is."""
    loader = load_online_deployment if asset == entities.ONLINE_ASSET else load_batch_deployment
    return loader(entities.asset_folder(asset) / entities.DEPLOYMENT_FILE)


def _model_folder(tmp_path: Path, task: str = "image-classification-multilabel") -> Path:
    folder = tmp_path / "mlflow_model"
    folder.mkdir()
    mlmodel = {"flavors": {"python_function": {}}, "metadata": {"task": task}}
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel), encoding="utf-8")
    return folder


def _mltable(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "MLTable").write_text(
        "paths:\n  - file: ./annotations.jsonl\ntransformations:\n  - read_json_lines: {}\n",
        encoding="utf-8",
    )
    (folder / "annotations.jsonl").write_text('{"image_url": "a.png", "label": "can"}\n')
    return folder


# --- deploy-online -----------------------------------------------------------------------


def test_deploy_online_dry_run_round_trips_through_the_loaders(azure_cli, tmp_path):
    result = azure_cli(f"{ONLINE} --instance-type Standard_E4s_v3 --instance-count 2 --dry-run")
    assert result.exit_code == 0, result.output
    assert azure_cli.connected == []
    environment_file, endpoint_file, deployment_file = _documents(result.stdout, tmp_path)
    environment = _environment(environment_file, INFERENCE_ENV)
    endpoint = load_online_endpoint(endpoint_file)
    deployment = load_online_deployment(deployment_file)
    repo = _repo_deployment(entities.ONLINE_ASSET)
    assert endpoint.name == "deit-ep" and endpoint.traffic == {deployment.name: 100}
    assert deployment.name == repo.name and deployment.endpoint_name == "deit-ep"
    assert deployment.instance_type == "Standard_E4s_v3" and deployment.instance_count == 2
    assert deployment.model.removeprefix("azureml:") == "deit-fridge:3"
    for key in ("request_settings", "liveness_probe", "readiness_probe"):
        assert vars(getattr(deployment, key)) == vars(getattr(repo, key)), key
    assert deployment.request_settings.request_timeout_ms == 90000  # REFERENCE.md's settings
    assert deployment.liveness_probe.failure_threshold == 49
    # The YAML's @latest, bound to the version the dry run would register.
    assert repo.environment.removeprefix("azureml:") == f"{INFERENCE_ENV}@latest"
    assert deployment.environment.removeprefix("azureml:") == (
        f"{INFERENCE_ENV}:{environment.version}"
    )
    code = Path(deployment.code_configuration.code)
    assert (code / deployment.code_configuration.scoring_script).is_file()


def test_deploy_online_defaults_come_from_the_repository_yaml(azure_cli, tmp_path):
    result = azure_cli(f"{ONLINE} --dry-run")
    assert result.exit_code == 0, result.output
    deployment = load_online_deployment(_documents(result.stdout, tmp_path)[-1])
    repo = _repo_deployment(entities.ONLINE_ASSET)
    assert (deployment.instance_type, deployment.instance_count) == (
        repo.instance_type,
        repo.instance_count,
    )


def test_deploy_online_creates_endpoint_then_deployment_then_routes_all_traffic(azure_cli):
    client = MockMLClient()
    command = f"{ONLINE} --deployment blue --instance-type standard_ds4_v2 {WORKSPACE}"
    result = azure_cli(command, client=client)
    assert result.exit_code == 0, result.output
    assert azure_cli.connected[0].subscription_id == SUB
    writes = client.writes()
    assert [(c.group, type(c.entity).__name__) for c in writes] == [
        ("environments", "Environment"),  # the workspace lacked it
        ("online_endpoints", "ManagedOnlineEndpoint"),
        ("online_deployments", "ManagedOnlineDeployment"),
        ("online_endpoints", "ManagedOnlineEndpoint"),
    ]
    environment, first, deployment, last = (c.entity for c in writes)
    assert deployment.environment == f"azureml:{INFERENCE_ENV}:{environment.version}"
    assert f"registered environment azureml:{INFERENCE_ENV}:" in result.stdout
    assert first.traffic == {} and last.traffic == {"blue": 100}
    assert deployment.instance_type == "Standard_DS4_v2"  # the catalog's spelling
    assert deployment.model == "azureml:deit-fridge:3" and deployment.endpoint_name == "deit-ep"
    assert "scoring uri: https://deit-ep." in result.stdout


@pytest.mark.parametrize("command", [ONLINE, BATCH])
def test_refused_inference_sku_makes_no_call_and_names_alternatives(azure_cli, command):
    client = MockMLClient()
    result = azure_cli(f"{command} --instance-type Standard_DS2_v2 {WORKSPACE}", client=client)
    assert result.exit_code == 2
    assert "Standard_DS2_v2" in result.stderr and "not allowed for inference" in result.stderr
    assert "Standard_DS3_v2" in result.stderr and "Standard_E2s_v3" in result.stderr
    assert client.calls == [] and azure_cli.connected == []


def test_local_model_folder_deploys_as_an_mlflow_model(azure_cli, tmp_path):
    folder = _model_folder(tmp_path)
    client = MockMLClient()
    command = f"deploy-online --endpoint deit-ep {WORKSPACE} --model"
    result = azure_cli(command, folder, client=client)
    assert result.exit_code == 0, result.output
    model = client.of("online_deployments")[0].entity.model
    assert (model.type, Path(model.path)) == ("mlflow_model", folder.resolve())


def test_bad_model_reference_is_refused_before_any_call(azure_cli):
    command = f"deploy-online --endpoint deit-ep --model deit-fridge:3 {WORKSPACE}"
    result = azure_cli(command, client=MockMLClient())
    assert result.exit_code == 2 and "expected azureml:NAME:VERSION" in result.stderr
    assert azure_cli.connected == []


# --- deploy-batch ------------------------------------------------------------------------


def test_deploy_batch_dry_run_round_trips_through_the_loaders(azure_cli, tmp_path):
    result = azure_cli(f"{BATCH} --instance-type Standard_DS3_v2 --dry-run")
    assert result.exit_code == 0, result.output
    documents = _documents(result.stdout, tmp_path)
    environment_file, compute_file, endpoint_file, deployment_file = documents
    environment = _environment(environment_file, INFERENCE_ENV)
    compute = load_compute(compute_file)
    endpoint = load_batch_endpoint(endpoint_file)
    deployment = load_batch_deployment(deployment_file)
    repo = _repo_deployment(entities.BATCH_ASSET)
    assert (compute.name, compute.size, compute.min_instances, compute.max_instances) == (
        "cpu-cluster",
        "Standard_DS3_v2",
        0,
        3,
    )
    assert endpoint.name == "deit-batch"
    assert endpoint.defaults.deployment_name == deployment.name == repo.name
    assert type(deployment) is type(repo)
    assert deployment.compute == "cpu-cluster" and deployment.endpoint_name == "deit-batch"
    assert deployment.model.removeprefix("azureml:") == "deit-fridge:3"
    for key in ("mini_batch_size", "max_concurrency_per_instance", "error_threshold"):
        assert getattr(deployment, key) == getattr(repo, key), key
    assert deployment.output_file_name == repo.output_file_name == "predictions.csv"
    assert vars(deployment.retry_settings) == vars(repo.retry_settings)
    assert repo.environment.removeprefix("azureml:") == f"{INFERENCE_ENV}@latest"
    assert deployment.environment.removeprefix("azureml:") == (
        f"{INFERENCE_ENV}:{environment.version}"
    )


def test_deploy_batch_cluster_and_size_default_to_the_repository_yaml(azure_cli, tmp_path):
    result = azure_cli("deploy-batch --endpoint deit-batch --model azureml:m:1 --dry-run")
    assert result.exit_code == 0, result.output
    _, compute_file, _, deployment_file = _documents(result.stdout, tmp_path)
    repo = _repo_deployment(entities.BATCH_ASSET)
    compute = load_compute(compute_file)
    assert compute.name == load_batch_deployment(deployment_file).compute == repo.compute
    assert compute.size == repo.tags[entities.COMPUTE_SIZE_TAG]


def test_deploy_batch_creates_cluster_endpoint_and_default_deployment(azure_cli):
    client = MockMLClient()
    command = f"{BATCH} --instance-type Standard_D4a_v4 --instance-count 2 {WORKSPACE}"
    result = azure_cli(command, client=client)
    assert result.exit_code == 0, result.output
    writes = client.writes()
    assert [c.group for c in writes] == [
        "compute",
        "environments",
        "batch_endpoints",
        "batch_deployments",
        "batch_endpoints",
    ]
    cluster, environment, _, deployment, endpoint = (c.entity for c in writes)
    assert deployment.environment == f"azureml:{INFERENCE_ENV}:{environment.version}"
    assert (cluster.type, cluster.size, cluster.min_instances) == (
        "amlcompute",
        "Standard_D4a_v4",
        0,
    )
    assert type(deployment).__name__ == "ModelBatchDeployment"
    assert deployment.compute == "cpu-cluster" and deployment.resources.instance_count == 2
    assert deployment.model == "azureml:deit-fridge:3"
    assert endpoint.defaults == {"deployment_name": deployment.name}


def test_existing_cluster_of_another_size_is_refused(azure_cli):
    existing = SimpleNamespace(name="cpu-cluster", size="Standard_DS2_v2")
    client = MockMLClient(**{"cpu-cluster": existing})
    result = azure_cli(f"{BATCH} --instance-type Standard_DS3_v2 {WORKSPACE}", client=client)
    assert result.exit_code == 2
    assert "'cpu-cluster' exists with VM size Standard_DS2_v2, not Standard_DS3_v2" in result.stderr
    assert client.writes() == []


# --- finetune ----------------------------------------------------------------------------


def test_finetune_refused_sku_makes_no_call(azure_cli):
    client = MockMLClient()
    command = f"{FINETUNE} --compute gpu --instance-type Standard_DS3_v2 {WORKSPACE}"
    result = azure_cli(command, client=client)
    assert result.exit_code == 2 and "not allowed for finetune" in result.stderr
    assert "Standard_NC4as_T4_v3" in result.stderr
    assert client.calls == [] and azure_cli.connected == []


def test_finetune_submits_the_pipeline_on_a_new_cluster(azure_cli, tmp_path):
    train, val = _mltable(tmp_path, "train"), _mltable(tmp_path, "val")
    client = MockMLClient()
    command = (
        "finetune --task image-classification-multilabel"
        " --model-name facebook/deit-base-patch16-224 --compute gpu-cluster"
        " --instance-type Standard_NC4as_T4_v3 --instance-count 2"
        f" --experiment fridge {WORKSPACE}"
    )
    result = azure_cli(command, "--training-data", train, "--validation-data", val, client=client)
    assert result.exit_code == 0, result.output
    (cluster_call,) = client.of("compute", "begin_create_or_update")
    cluster = cluster_call.entity
    assert (cluster.size, cluster.min_instances, cluster.max_instances) == (
        "Standard_NC4as_T4_v3",
        0,
        2,
    )
    (job_call,) = client.of("jobs")
    job = job_call.entity
    assert type(job).__name__ == "PipelineJob" and job_call.kwargs["experiment_name"] == "fridge"
    assert job.settings.default_compute == "gpu-cluster"
    (node,) = job.jobs.values()
    inputs = {name: getattr(value, "_data", value) for name, value in node.inputs.items()}
    assert node.component.type == "pipeline"
    assert "multilabel" in str(node.component._source_path)
    assert (inputs["training_data"].type, Path(inputs["training_data"].path)) == (
        "mltable",
        train.resolve(),
    )
    assert inputs["model_name"] == "facebook/deit-base-patch16-224"
    assert inputs["compute_finetune"] == inputs["compute_model_evaluation"] == "gpu-cluster"
    assert inputs["instance_count"] == 2
    assert "submitted job" in result.stdout and "studio: https://" in result.stdout
    (registered,) = client.of("environments", "create_or_update")
    steps = node.component.jobs.values()
    assert {step.component.environment for step in steps} == {
        f"azureml:{TRAINING_ENV}:{registered.entity.version}"
    }


def test_finetune_dry_run_prints_a_loadable_serverless_job(azure_cli, tmp_path):
    command = (
        f"{FINETUNE} --instance-type Standard_NC12s_v3 --set number_of_epochs=3"
        " --set learning_rate=5e-5 --dry-run"
    )
    result = azure_cli(command)
    assert result.exit_code == 0, result.output
    # Serverless: no cluster to create; the training environment, then the job.
    environment_file, job_file = _documents(result.stdout, tmp_path)
    _environment(environment_file, TRAINING_ENV)
    job = load_job(job_file)
    assert job.settings.default_compute == "serverless"
    (node,) = job.jobs.values()
    inputs = {name: getattr(value, "_data", value) for name, value in node.inputs.items()}
    assert inputs["training_data"].path.endswith("fridge-train:1")  # loaders drop azureml:
    assert inputs["test_data"].path == inputs["validation_data"].path  # test defaults to val
    assert inputs["instance_type_finetune"] == "Standard_NC12s_v3"
    assert inputs["instance_type_model_evaluation"] == "Standard_NC12s_v3"
    assert inputs["process_count_per_instance"] == 2  # NC12s_v3 has 2 GPUs
    assert (inputs["number_of_epochs"], inputs["learning_rate"]) == (3, 5e-5)


@pytest.mark.parametrize(
    "command, message",
    [
        (
            "finetune --training-data azureml:t:1 --instance-type Standard_NC6s_v3",
            "needs --test-data (or --validation-data)",
        ),
        (
            f"{FINETUNE} --instance-type Standard_NC6s_v3 --set number_of_epochz=3",
            "has no input 'number_of_epochz'; its inputs: apply_augmentations, ",
        ),
        (
            f"{FINETUNE} --instance-type Standard_NC6s_v3"
            " --set instance_type_finetune=Standard_D2s_v3",
            "--set instance_type_finetune: set it with --compute / --instance-type",
        ),
        (
            f"{FINETUNE} --instance-type Standard_NC6s_v3 --set number_of_epochs=many",
            "--set number_of_epochs: expected integer, got 'many'",
        ),
    ],
)
def test_finetune_input_errors_say_what_to_pass(azure_cli, command, message):
    result = azure_cli(f"{command} --dry-run")
    assert result.exit_code == 2 and message in result.stderr


def test_finetune_local_data_must_be_an_mltable_folder(azure_cli, tmp_path):
    command = "finetune --instance-type Standard_NC6s_v3 --dry-run --training-data"
    result = azure_cli(command, tmp_path)
    assert result.exit_code == 2 and "reads an MLTable folder" in result.stderr


# --- register-model and invoke -----------------------------------------------------------


def test_register_model_records_an_mlflow_model_with_the_task_tag(azure_cli, tmp_path):
    folder = _model_folder(tmp_path)
    client = MockMLClient()
    command = "register-model --name deit-fridge --tag team=vision"
    result = azure_cli(f"{command} {WORKSPACE} --path", folder, client=client)
    assert result.exit_code == 0, result.output
    (call,) = client.of("models")
    assert (call.entity.type, call.entity.name) == ("mlflow_model", "deit-fridge")
    assert call.entity.tags == {"task": "image-classification-multilabel", "team": "vision"}
    assert result.stdout.strip() == "registered azureml:deit-fridge:1"

    dry = azure_cli(f"{command} --dry-run --path", folder)
    (model_file,) = _documents(dry.stdout, tmp_path)
    loaded = load_model(model_file)
    assert (loaded.name, loaded.type, Path(loaded.path)) == (
        "deit-fridge",
        "mlflow_model",
        folder.resolve(),
    )


def test_invoke_online_sends_the_request_file(azure_cli, tmp_path):
    request = tmp_path / "request.json"
    request.write_text('{"input_data": ["aGVsbG8="]}', encoding="utf-8")
    client = MockMLClient()
    result = azure_cli(
        f"invoke-online --endpoint deit-ep {WORKSPACE} --request", request, client=client
    )
    assert result.exit_code == 0, result.output
    (call,) = client.calls
    assert call.kwargs["request_file"] == str(request) and call.kwargs["endpoint_name"] == "deit-ep"
    assert '"labels": ["can", "carton"]' in result.stdout


def test_invoke_online_refuses_a_non_json_request_before_connecting(azure_cli, tmp_path):
    request = tmp_path / "request.json"
    request.write_text("input_data: [x]", encoding="utf-8")
    command = f"invoke-online --endpoint deit-ep {WORKSPACE} --request"
    result = azure_cli(command, request, client=MockMLClient())
    assert result.exit_code == 2 and "not JSON" in result.stderr
    assert azure_cli.connected == []


@pytest.mark.parametrize("kind", ["uri_folder", "uri_file"])
def test_invoke_batch_sends_a_folder_or_a_csv(azure_cli, tmp_path, kind):
    data = tmp_path / "images"
    data.mkdir()
    if kind == "uri_file":
        data = tmp_path / "images.csv"
        data.write_text("image\naGVsbG8=\n", encoding="utf-8")
    client = MockMLClient()
    command = f"invoke-batch --endpoint deit-batch {WORKSPACE} --input"
    result = azure_cli(command, data, client=client)
    assert result.exit_code == 0, result.output
    (call,) = client.calls
    assert (call.kwargs["input"].type, call.kwargs["input"].path) == (kind, str(data.resolve()))
    assert "started batch job batch-job-1" in result.stdout


def test_placeholder_workspace_is_refused_before_connecting(azure_cli, tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(
        '{"subscription_id": "<SUBSCRIPTION_ID>", "resource_group": "rg", "workspace_name": "ws"}'
    )
    monkeypatch.chdir(tmp_path)
    result = azure_cli("invoke-batch --endpoint deit-batch --input azureml:images:1")
    assert result.exit_code == 2
    assert "subscription_id is a placeholder ('<SUBSCRIPTION_ID>')" in result.stderr
    assert azure_cli.connected == []


def test_workspace_check_prints_the_resolved_workspace_and_connects_nothing(azure_cli):
    result = azure_cli(f"workspace {WORKSPACE}")
    assert result.exit_code == 0, result.output
    assert f"workspace ws in resource group rg, subscription {SUB} (from flags)" in result.stdout
    assert azure_cli.connected == []


def test_workspace_check_refuses_a_placeholder(azure_cli):
    result = azure_cli(
        "workspace --subscription <SUBSCRIPTION_ID> --resource-group rg --workspace ws"
    )
    assert result.exit_code == 2
    assert "placeholder" in result.stderr


# --- data upload, environments, and what a fresh workspace refuses -----------------------


@pytest.fixture
def imported(tmp_path, colour_folders) -> Path:
    from deitkit.data.importer import import_dataset

    return import_dataset(colour_folders, tmp_path / "data").out_dir


def test_data_upload_prints_the_references_finetune_takes(azure_cli, imported, tmp_path):
    client = MockMLClient()
    result = azure_cli(f"data upload --name colours {WORKSPACE}", imported, client=client)
    assert result.exit_code == 0, result.output
    printed = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert printed["training_data"] == "azureml:colours-training:1"
    assert printed["validation_data"] == "azureml:colours-validation:1"
    assert printed["images"].startswith("azureml:colours-images:1 at azureml://subscriptions/")

    finetune = f"finetune --instance-type Standard_NC6s_v3 {WORKSPACE}"
    refs = f"--training-data {printed['training_data']} --validation-data azureml:nothere:1"
    result = azure_cli(f"{finetune} {refs}", client=client)
    assert result.exit_code == 2  # the service refuses a data version the workspace lacks
    assert (
        "Could not find asset with ID" in result.stderr
        and "data/nothere/versions/1" in result.stderr
    )
    refs = (
        f"--training-data {printed['training_data']} --validation-data {printed['validation_data']}"
    )
    result = azure_cli(f"{finetune} {refs}", client=client)
    assert result.exit_code == 0, result.output


def test_data_upload_dry_run_prints_three_loadable_assets(azure_cli, imported, tmp_path):
    from azure.ai.ml import load_data

    result = azure_cli("data upload --name colours --version 4 --dry-run", imported)
    assert result.exit_code == 0, result.output
    assert azure_cli.connected == []
    loaded = [load_data(path) for path in _documents(result.stdout, tmp_path)]
    assert [(d.name, d.type, d.version) for d in loaded] == [
        ("colours-images", "uri_folder", "4"),
        ("colours-training", "mltable", "4"),
        ("colours-validation", "mltable", "4"),
    ]
    assert Path(loaded[0].path) == (imported / "colours").absolute()


def test_data_upload_of_a_folder_that_is_not_an_import_uploads_nothing(azure_cli, colour_folders):
    client = MockMLClient()
    result = azure_cli(f"data upload --name colours {WORKSPACE}", colour_folders, client=client)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "not a folder `deitkit data import` wrote" in line
    assert "deitkit data import DATASET --out DATA" in line
    assert client.calls == [] and azure_cli.connected == []


def test_finetune_refuses_an_mltable_whose_images_leave_it(azure_cli, imported):
    client = MockMLClient()
    train = imported / "training-mltable-folder"
    command = f"finetune --instance-type Standard_NC6s_v3 {WORKSPACE} --training-data"
    result = azure_cli(command, train, "--validation-data", "azureml:v:1", client=client)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "image_url '../colours/" in line and "Azure uploads only that folder" in line
    assert f"deitkit azure data upload {imported} --name NAME" in line
    assert client.calls == [] and azure_cli.connected == []


def test_a_second_submit_registers_no_environment(azure_cli):
    client = MockMLClient()
    for _ in range(2):
        result = azure_cli(
            f"{FINETUNE} --instance-type Standard_NC6s_v3 {WORKSPACE}", client=client
        )
        assert result.exit_code == 2  # fridge-train:1 is not in this workspace
    (created,) = client.of("environments", "create_or_update")
    assert [c.kwargs for c in client.of("environments", "get")] == [
        {"name": TRAINING_ENV, "version": created.entity.version, "label": None}
    ] * 2


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """The repository's assets.yaml and asset folders, copied so that one can be broken."""
    import shutil

    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(entities.asset_folder(entities.ONLINE_ASSET).parents[1] / "assets.yaml", root)
    for folder in ("components", "environments", "endpoints"):
        shutil.copytree(
            entities.asset_folder(entities.ONLINE_ASSET).parents[1] / folder, root / folder
        )
    return root


@pytest.mark.parametrize("command", [f"{FINETUNE} --instance-type Standard_NC6s_v3", ONLINE])
def test_a_missing_environment_context_uploads_nothing(azure_cli, repo_copy, command):
    (repo_copy / "environments" / "training" / "context" / "Dockerfile").unlink()
    (repo_copy / "environments" / "inference" / "context" / "Dockerfile").unlink()
    client = MockMLClient()
    result = azure_cli(
        f"{command} {WORKSPACE} --manifest", repo_copy / "assets.yaml", client=client
    )
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "Dockerfile" in line and "is missing; restore" in line
    assert "az ml environment create" in line
    assert client.calls == [] and azure_cli.connected == []


def test_environments_register_then_find_them(azure_cli):
    client = MockMLClient()
    result = azure_cli(f"environments register {WORKSPACE}", client=client)
    assert result.exit_code == 0, result.output
    assert sorted(line.split(":")[1] for line in result.stdout.splitlines()) == [
        INFERENCE_ENV,
        TRAINING_ENV,
    ]
    assert all(line.endswith(": registered") for line in result.stdout.splitlines())
    again = azure_cli(f"environments register --name {TRAINING_ENV} {WORKSPACE}", client=client)
    assert again.stdout.strip().endswith(": already registered")
    assert len(client.of("environments", "create_or_update")) == 2


def test_environments_stage_prints_what_az_ml_environment_create_takes(azure_cli):
    result = azure_cli(f"environments stage --name {INFERENCE_ENV}")
    assert result.exit_code == 0, result.output
    name, version, context, spec = result.stdout.strip().split("\t")
    assert name == INFERENCE_ENV
    environment = load_environment(
        spec, params_override=[{"version": version}, {"build.path": context}]
    )
    assert environment.version == version
    assert (Path(context) / environment.build.dockerfile_path).is_file()
    unknown = azure_cli("environments stage --name nope")
    assert unknown.exit_code == 2 and "not an environment of" in unknown.stderr
