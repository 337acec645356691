"""The repository's components, pipelines and batch deployment run through deitkit.azure.local
on tiny generated data staged as Azure's samples stage it: images uploaded to a (local)
datastore, MLTable folders whose JSONL holds azureml:// URLs into it.

Every job runs `deitkit` in fresh processes, as on Azure, so these tests are `slow`. What is
set beyond the required inputs, and why:
- `model_name`: a tiny scratch DeiT (2 layers, 32 wide, 16 px), because the default
  (facebook/deit-base-patch16-224) must be downloaded from the hub, which tests never reach;
- `number_of_epochs: 1`: the default (15) spends 10-13 s more per run on 14 more epochs,
  evaluations and checkpoints of the same 19 images (measured on 2 cores); one epoch runs
  every code path the fifteen do.
The pipelines run with their own defaults otherwise, once each, and the multiclass pipeline
once more with every optional input given, on two training processes.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from helpers import save_catalog_model, write_colour_folders, write_colour_multilabel
from PIL import Image

from deitkit.azure.local import LocalJobError, run_local, run_local_batch
from deitkit.azure.local.components import load_spec
from deitkit.azure.local.records import read_record
from deitkit.batch import HEADER
from deitkit.data.importer import ImportResult, import_dataset
from deitkit.inference import load_classifier

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = ROOT / "components"
MODEL = "scratch:deit-tiny:image_size=16,num_hidden_layers=2,hidden_size=32,num_attention_heads=4,intermediate_size=64"  # noqa: E501
DATASTORE = "workspaceblobstore"
# The long form the service returns for a data asset's path (the short azureml://datastores/
# form becomes None in mltable's stream_info conversion; deitkit reads both).
WORKSPACE = "azureml://subscriptions/0000/resourcegroups/rg/workspaces/ws"
JOB_SECONDS = 300  # a stuck job fails its test instead of the whole suite
# Two training processes on one CPU: gloo, one thread each (DeepSpeed's CPU accelerator).
CPU_DISTRIBUTED = {"DS_ACCELERATOR": "cpu", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}


def _stage(imported: ImportResult, datastore: Path, upload: str) -> dict[str, Path]:
    """What Azure's prepare_data.py does: upload the images (here: copy them into the
    datastore folder) and write MLTable folders whose JSONL holds azureml:// URLs into them."""
    prefix = f"LocalUpload/{upload}/{imported.data_dir.name}"
    shutil.copytree(imported.data_dir, datastore / DATASTORE / prefix)
    staged = {}
    splits = {"train": imported.train_mltable, "validation": imported.validation_mltable}
    for split, folder in splits.items():
        target = imported.out_dir / "azure" / folder.name
        target.mkdir(parents=True)
        shutil.copy(folder / "MLTable", target / "MLTable")
        for jsonl in folder.glob("*.jsonl"):
            rows = []
            for line in jsonl.read_text().splitlines():
                row = json.loads(line)
                image = (folder / row["image_url"]).resolve()
                inside = image.relative_to(imported.data_dir.resolve()).as_posix()
                row["image_url"] = f"{WORKSPACE}/datastores/{DATASTORE}/paths/{prefix}/{inside}"
                rows.append(json.dumps(row))
            (target / jsonl.name).write_text("\n".join(rows) + "\n")
        staged[split] = target
    return staged


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.getbasetemp() / 'mlflow.db'}"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """Both datasets imported with `deitkit data import` and staged in one datastore."""
    root = tmp_path_factory.mktemp("azure-local")
    datastore = root / "datastore"
    multiclass = import_dataset(write_colour_folders(root / "src" / "colours"), root / "mc")
    multilabel = import_dataset(write_colour_multilabel(root / "src" / "multilabel"), root / "ml")
    return {
        "root": root,
        "datastore": datastore,
        "multiclass": _stage(multiclass, datastore, "0a1b"),
        "multilabel": _stage(multilabel, datastore, "2c3d"),
        "imported": multiclass,
    }


def _run(spec: Path, inputs: dict, data: dict, tracking_uri: str, **options):
    return run_local(
        spec,
        inputs,
        datastore=data["datastore"],
        work_dir=data["root"] / "runs",
        tracking_uri=tracking_uri,
        timeout_s=JOB_SECONDS,
        **options,
    )


@pytest.fixture(scope="module")
def finetuned(data, tracking_uri):
    """The finetune component alone: its required inputs, the scratch model, one epoch."""
    inputs = {
        "training_data": data["multiclass"]["train"],
        "task_name": "image-classification",
        "model_name": MODEL,
        "number_of_epochs": "1",
    }
    return _run(COMPONENTS / "finetune/spec.yaml", inputs, data, tracking_uri)


def _images(data: dict, count: int = 4) -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in data["imported"].validation_images(count)]


def _scores(model_dir: Path, data: dict) -> None:
    """The packaged model loads and gives a probability per label for each image."""
    classifier = load_classifier(model_dir)
    predictions = classifier.predict(_images(data))
    assert len(predictions) == 4
    for prediction in predictions:
        assert prediction.labels == ["blue", "green", "red"]
        assert len(prediction.probs) == 3 and all(0 <= p <= 1 for p in prediction.probs)


def test_finetune_component_alone(finetuned, data, tracking_uri):
    (job,) = finetuned.jobs.values()
    record = job.record
    assert record["status"] == "Completed"
    # Defaults are rendered (Azure renders an optional input's default), unset inputs dropped.
    command = record["command"]
    assert "--lr-scheduler warmup_cosine" in command and "--resume True" in command
    assert "--augmentations" not in command  # empty: the model decides (on, off for scratch)
    assert "--validation-fraction 0.2" in command and "--validation " not in command
    assert "--image-width" not in command and "--deepspeed" not in command
    # distribution: pytorch with one process: Azure still starts it as rank 0 of 1.
    assert [Path(p["log"]).name for p in record["processes"]] == ["std_log_process_0.txt"]
    assert (finetuned.outputs["mlflow_model_folder"] / "MLmodel").is_file()
    metrics = json.loads((finetuned.outputs["pytorch_model_folder"] / "metrics.json").read_text())
    assert metrics["epoch"] == pytest.approx(1.0)
    _scores(finetuned.outputs["mlflow_model_folder"], data)


@pytest.mark.parametrize(
    ("task", "dataset"),
    [("image-classification", "multiclass"), ("image-classification-multilabel", "multilabel")],
)
def test_finetune_component_starts_from_the_catalog_model(task, dataset, data, tracking_uri):
    # Azure's catalog model as the mlflow_model input: mlflow.transformers, 4 other labels.
    catalog = data["root"] / f"catalog-{dataset}"
    save_catalog_model(catalog, labels=["tench", "goldfish", "great_white_shark", "tiger_shark"])
    inputs = {
        "training_data": data[dataset]["train"],
        "task_name": task,
        "mlflow_model": catalog,
        "number_of_epochs": "1",
    }
    run = _run(COMPONENTS / "finetune/spec.yaml", inputs, data, tracking_uri)

    (job,) = run.jobs.values()
    assert job.record["status"] == "Completed"
    assert f"--model {job.record['inputs']['mlflow_model']['value']}" in job.record["command"]
    model = run.outputs["mlflow_model_folder"]
    classifier = load_classifier(model)
    assert classifier.task.value == task and classifier.labels == ["blue", "green", "red"]
    _scores(model, data)


def test_training_logs_into_the_run_made_for_the_job(finetuned, tracking_uri):
    from mlflow.tracking import MlflowClient

    (job,) = finetuned.jobs.values()
    run = MlflowClient(tracking_uri).get_run(job.record["environment"]["MLFLOW_RUN_ID"])
    assert run.info.status == "FINISHED"
    assert "eval_accuracy" in run.data.metrics


def test_validate_data_component_alone(data, tracking_uri):
    spec = COMPONENTS / "validate_data/spec.yaml"
    run = _run(spec, {"data": data["multilabel"]["train"]}, data, tracking_uri)

    (job,) = run.jobs.values()
    log = Path(job.record["processes"][0]["log"]).read_text()
    assert "result: OK" in log and "images:  19 usable" in log


def test_an_mltable_whose_paths_leave_its_folder_fails_as_on_azure(data, tracking_uri):
    # `deitkit data import` writes image_url ../colours/...; only the MLTable folder is mounted.
    spec = COMPONENTS / "validate_data/spec.yaml"
    local = data["imported"].train_mltable

    with pytest.raises(LocalJobError, match="exited with") as err:
        _run(spec, {"data": local}, data, tracking_uri)
    assert "does not exist" in str(err.value) and "../colours/" in str(err.value)


def test_evaluate_component_alone(finetuned, data, tracking_uri):
    inputs = {
        "mlflow_model": finetuned.outputs["mlflow_model_folder"],
        "test_data": data["multiclass"]["validation"],
    }
    run = _run(COMPONENTS / "evaluate/spec.yaml", inputs, data, tracking_uri)

    metrics = json.loads((run.outputs["evaluation_result"] / "metrics.json").read_text())
    assert 0 <= metrics["accuracy"] <= 1 and "AUC_macro" in metrics
    assert "--threshold" not in next(iter(run.jobs.values())).record["command"]


def test_the_batch_deployment_scores_good_and_bad_images(finetuned, data, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(_images(data, 3)):
        image.save(folder / f"good{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("not an image")

    run = run_local_batch(
        ROOT / "endpoints/batch/deployment.yml",
        model=finetuned.outputs["mlflow_model_folder"],
        input=folder,
        output=tmp_path / "out",
        work_dir=data["root"] / "runs",
        timeout_s=JOB_SECONDS,
    )

    assert run.output_file == tmp_path / "out/predictions.csv"
    rows = pd.read_csv(run.output_file, header=None, names=HEADER, keep_default_na=False)
    names = ["broken.png", "good0.png", "good1.png", "good2.png", "notes.txt"]
    assert sorted(rows["file_name"]) == names
    good = rows[rows["file_name"].str.startswith("good")]
    assert (good["error"] == "").all()
    assert all(json.loads(labels) == ["blue", "green", "red"] for labels in good["labels"])
    assert all(len(json.loads(probs)) == 3 for probs in good["probs"])
    bad = rows[~rows["file_name"].str.startswith("good")]
    assert (bad["error"] != "").all() and (bad["predicted"] == "").all()
    # mini_batch_size 2: five files in three run() calls; every file came back as a row.
    assert run.summary == {"mini_batches": 3, "succeeded": 5, "failed": 0, "errors": []}


def _check_pipeline(run, data: dict) -> None:
    """Steps ran in order, each reading what the step before it wrote; the model scores."""
    assert list(run.jobs) == ["validate_data", "finetune", "evaluate"]
    finetune, evaluate = run.jobs["finetune"], run.jobs["evaluate"]
    model = finetune.outputs["mlflow_model_folder"]
    read = evaluate.record["inputs"]["mlflow_model"]
    assert read["from"] == "finetune.outputs.mlflow_model_folder"
    mounted = Path(read["value"])
    assert sorted(p.relative_to(mounted) for p in mounted.rglob("*")) == sorted(
        p.relative_to(model) for p in model.rglob("*")
    )
    assert run.outputs["mlflow_model_folder"] == model
    assert run.outputs["pytorch_model_folder"] == finetune.outputs["pytorch_model_folder"]
    assert run.outputs["evaluation_result"] == evaluate.outputs["evaluation_result"]
    assert (run.outputs["evaluation_result"] / "metrics.json").is_file()
    summary = read_record(run.folder / "run.json")
    assert summary["status"] == "Completed"
    _scores(run.outputs["mlflow_model_folder"], data)


def test_multiclass_pipeline_with_its_own_defaults(data, tracking_uri):
    inputs = {
        "training_data": data["multiclass"]["train"],
        "test_data": data["multiclass"]["validation"],
        "model_name": MODEL,
        "number_of_epochs": "1",
    }
    run = _run(COMPONENTS / "pipeline_multiclass/spec.yaml", inputs, data, tracking_uri)

    _check_pipeline(run, data)
    command = run.jobs["finetune"].record["command"]
    assert "--lr-scheduler warmup_cosine" in command and "--validation-fraction 0.2" in command
    assert "--metric-for-best-model accuracy" in command  # the pipeline's default
    assert "--task image-classification " in command
    metrics = json.loads((run.outputs["pytorch_model_folder"] / "metrics.json").read_text())
    assert metrics["epoch"] == pytest.approx(1.0)


def test_multilabel_pipeline_with_its_own_defaults(data, tracking_uri):
    inputs = {
        "training_data": data["multilabel"]["train"],
        "test_data": data["multilabel"]["validation"],
        "model_name": MODEL,
        "number_of_epochs": "1",
    }
    run = _run(COMPONENTS / "pipeline_multilabel/spec.yaml", inputs, data, tracking_uri)

    _check_pipeline(run, data)
    assert "--threshold 0.5" in run.jobs["evaluate"].record["command"]
    assert "--metric-for-best-model iou" in run.jobs["finetune"].record["command"]
    metrics = json.loads((run.outputs["evaluation_result"] / "metrics.json").read_text())
    assert "iou" in metrics


def test_multiclass_pipeline_with_every_optional_input_on_two_processes(
    finetuned, data, tracking_uri
):
    spec = COMPONENTS / "pipeline_multiclass/spec.yaml"
    inputs = {
        "training_data": data["multiclass"]["train"],
        "test_data": data["multiclass"]["validation"],
        # Every optional input, each a value that changes something where that is cheap.
        "compute_data_validation": "cpu-cluster",
        "compute_finetune": "gpu-cluster",
        "compute_model_evaluation": "gpu-cluster",
        "instance_type_data_validation": "Standard_DS3_v2",
        "instance_type_finetune": "Standard_NC6s_v3",
        "instance_type_model_evaluation": "Standard_NC6s_v3",
        "instance_count": "1",
        "process_count_per_instance": "2",
        "validation_data": data["multiclass"]["validation"],
        "validation_fraction": "0.25",
        "model_name": MODEL,
        "mlflow_model": finetuned.outputs["mlflow_model_folder"],  # wins over model_name
        "image_width": "16",
        "image_height": "16",
        "number_of_epochs": "1",
        "max_steps": "2",
        "training_batch_size": "4",
        "validation_batch_size": "4",
        "learning_rate": "1e-3",
        "learning_rate_scheduler": "warmup_linear",
        "warmup_steps": "1",
        "optimizer": "adamw_hf",
        "weight_decay": "0.01",
        "gradient_accumulation_step": "1",
        "precision": "32",
        "label_smoothing_factor": "0.1",
        "random_seed": "7",
        "max_grad_norm": "0.5",
        "class_weights": "auto",
        "metric_for_best_model": "loss",
        "apply_augmentations": "false",
        "rand_augment": "true",
        "mixup": "0.2",
        "cutmix": "0.2",
        "random_erasing": "0.25",
        "number_of_workers": "0",
        "apply_deepspeed": "true",
        "deepspeed_config": ROOT / "src/deitkit/resources/deepspeed_zero1.json",
        "apply_ort": "false",  # true compiles the model with torch.compile: minutes on a CPU
        "early_stopping": "true",
        "early_stopping_patience": "2",
        "save_steps": "1",
        # Both ranks check the output folder while the other may be saving its config there.
        "resume_from_checkpoint": "false",
        # Each rank holds the teacher: the finetune component's model, on the same labels.
        "teacher_model": MODEL,
        "teacher_mlflow_model": finetuned.outputs["mlflow_model_folder"],  # wins over the id
        "distillation": "soft",
        "distillation_alpha": "0.3",
        "distillation_tau": "2.0",
        "calibrate": "true",  # a temperature fitted on the validation set and packaged
    }
    declared = load_spec(spec).entity.inputs
    assert {name for name, decl in declared.items() if decl.optional} <= set(inputs)

    run = _run(spec, inputs, data, tracking_uri, environment_variables=CPU_DISTRIBUTED)

    _check_pipeline(run, data)
    finetune = run.jobs["finetune"].record
    assert finetune["distribution"] == {"type": "pytorch", "process_count_per_instance": 2}
    assert [(p["rank"], p["exit_code"]) for p in finetune["processes"]] == [(0, 0), (1, 0)]
    command = finetune["command"]
    for flag in ("--max-steps 2", "--mixup 0.2", "--rand-augment True", "--deepspeed ",
                 "--early-stopping True", "--image-width 16", "--precision 32",
                 "--label-smoothing 0.1", "--class-weights auto", "--resume False",
                 "--distillation soft", "--distillation-alpha 0.3",
                 "--distillation-tau 2.0"):  # fmt: skip
        assert flag in command
    # Both inputs are rendered; the last --teacher, the MLflow model as the job mounted it (a
    # path of the job's own, as Azure gives), is the one the CLI keeps.
    teachers = re.findall(r"--teacher (\S+)", command)
    assert teachers[0] == MODEL and len(teachers) == 2, command
    assert teachers[1] != str(finetuned.outputs["mlflow_model_folder"])
    assert (Path(teachers[1]) / "MLmodel").read_bytes() == (
        finetuned.outputs["mlflow_model_folder"] / "MLmodel"
    ).read_bytes()
    package = run.outputs["mlflow_model_folder"] / "artifacts" / "checkpoint" / "deitkit.json"
    written = json.loads(package.read_text())
    assert written["distillation"]["distilled_from"] == teachers[1]
    assert "--calibrate True" in command and written["temperature"] > 0
    assert written["temperature"] != 1.0  # fitted on the validation set, then packaged
    # max_steps 2 and save_steps 1: two checkpoints, in each DeepSpeed's ZeRO-1 optimizer
    # state split over the two ranks (one shard per process).
    checkpoints = run.outputs["pytorch_model_folder"] / "checkpoints"
    saved = sorted(p.name for p in checkpoints.glob("checkpoint-*"))
    assert saved == ["checkpoint-1", "checkpoint-2"]
    shards = sorted(p.name for p in checkpoints.glob("checkpoint-2/global_step2/*optim*"))
    assert [s.split("zero_pp_rank_")[1][0] for s in shards] == ["0", "1"], shards
