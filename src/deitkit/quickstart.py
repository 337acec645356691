"""The main job on the embedded defaults: sample, validate, fine-tune, evaluate, serve, batch."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deitkit.data.digits import DIGITS_COUNT
from deitkit.errors import ConfigError, DeitkitError
from deitkit.tasks import Task
from deitkit.workdir import fresh_folder

MARKER = ".deitkit-quickstart"
# DeiT-tiny's width at half its depth. Multiclass on 16 px patches (a 2x2 grid at 32 px, 4 image
# tokens): as accurate on the 8x8 digit scans as 8 px patches' 4x4 grid (0.95 either way) at about
# half the time per epoch, which keeps the whole job near 2.5 minutes on 2 AVX2 cores
# (docs/quickstart.md). Multilabel keeps the 4x4 grid (a digit cell is 2x2 patches there).
MODELS = {
    Task.MULTICLASS: "scratch:deit-tiny:patch_size=16,num_hidden_layers=6",
    Task.MULTILABEL: "scratch:deit-tiny:patch_size=8,num_hidden_layers=6",
}
# The rest of the recipe is a scratch model's defaults (training/config.py SCRATCH_DEFAULTS: 100
# warmup steps, weight decay 0.05, no augmentation); this half-depth model trains at a higher
# rate and with larger batches than their 3e-4 and 16, which are for DeiT-tiny's 12 layers.
COMMON_TRAINING = {"train_batch_size": 32, "learning_rate": 1e-3}
TRAINING = {
    Task.MULTICLASS: {"image_size": 32, "epochs": 22},
    Task.MULTILABEL: {"image_size": 32, "epochs": 25},
}
MULTILABEL_SAMPLE_COUNT = 4000
# Fewest sample images a run takes: enough for every digit in both splits and 24 batch images.
MIN_SAMPLE_SIZE = 100
VALIDATION_FRACTION = 0.2
SEED = 42
ONLINE_IMAGES = 2  # the seed request's two images
BATCH_IMAGES = 24
REQUEST_TIMEOUT_S = 120.0


class StageError(DeitkitError):
    """A quickstart stage failed; the message names the stage and why."""


@dataclass(frozen=True)
class Outputs:
    """Where the quickstart writes everything, under one folder."""

    root: Path

    @property
    def sample(self) -> Path:
        return self.root / "sample"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def finetune(self) -> Path:
        return self.root / "finetune"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation"

    @property
    def online(self) -> Path:
        return self.root / "online"

    @property
    def batch_input(self) -> Path:
        return self.root / "batch" / "images"

    @property
    def predictions(self) -> Path:
        return self.root / "batch" / "predictions.csv"


@dataclass
class QuickstartResult:
    """What the run did: seconds per stage, headline numbers, and the paths it wrote."""

    task: Task
    outputs: Outputs
    timings: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)


def prepare_output(root: Path) -> Outputs:
    """Create `root` afresh; only a previous quickstart output (it has MARKER) is replaced.

    Raises:
        ConfigError: `root` exists and is not a previous quickstart output.
    """
    return Outputs(fresh_folder(root, marker=MARKER, what="a previous quickstart output"))


def spread(items: Sequence[Path], count: int) -> list[Path]:
    """`count` items evenly spaced over `items` (the annotations are grouped by label)."""
    return [items[i * len(items) // count] for i in range(min(count, len(items)))]


def check_answer(answer: Any, *, n_images: int, labels: Sequence[str], task: Task) -> None:
    """Raise StageError unless `answer` is the seed's response shape for `n_images` images."""
    if not isinstance(answer, list) or len(answer) != n_images:
        raise StageError(f"online endpoint: expected a list of {n_images} objects, got {answer!r}")
    for index, item in enumerate(answer):
        if not isinstance(item, dict) or set(item) != {"probs", "labels"}:
            raise StageError(f"online endpoint: answer {index} is not {{probs, labels}}: {item}")
        if item["labels"] != list(labels) or len(item["probs"]) != len(labels):
            raise StageError(f"online endpoint: answer {index} does not follow the label order")
        if not task.is_multilabel and abs(sum(item["probs"]) - 1.0) > 1e-3:
            raise StageError(f"online endpoint: answer {index}'s probabilities do not sum to 1")


def post_json(url: str, body: dict[str, Any]) -> Any:
    """POST `body` as JSON; the decoded answer, or StageError with the server's message."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        raise StageError(f"online endpoint answered {err.code}: {err.read()[:500]!r}") from None
    except (urllib.error.URLError, OSError) as err:
        raise StageError(f"online endpoint unreachable at {url}: {err}") from None


class Quickstart:
    """Runs the stages in order, timing each; `say` prints progress lines.

    Args:
        task: Multiclass (digits) or multilabel (composed digits).
        out: The output folder (recreated).
        epochs: Override of the preset's epochs (tests and tries use 1).
        sample_size: How many sample images to use: the first N of the 1,797 digits, or N
            composed multilabel images; None: all the digits, or MULTILABEL_SAMPLE_COUNT.
            A quick try of every stage (the tests) uses a few hundred or fewer.
        say: Where progress lines go.

    Raises:
        ConfigError: `sample_size` is below MIN_SAMPLE_SIZE, or above 1,797 for the digits.
    """

    def __init__(
        self,
        task: Task,
        out: Path,
        *,
        epochs: int | None = None,
        sample_size: int | None = None,
        say: Callable[[str], None],
    ):
        if sample_size is not None and sample_size < MIN_SAMPLE_SIZE:
            raise ConfigError(f"sample size {sample_size} is too small; use {MIN_SAMPLE_SIZE}+")
        if sample_size is not None and not task.is_multilabel and sample_size > DIGITS_COUNT:
            raise ConfigError(
                f"sample size {sample_size}: the digits sample has {DIGITS_COUNT} images"
            )
        self.task = task
        self.epochs = epochs
        self.sample_size = sample_size
        self.say = say
        self.outputs = prepare_output(out)
        self.result = QuickstartResult(task, self.outputs)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage; any deitkit error inside it becomes StageError naming the stage."""
        self.say(f"\n== {name} ==")
        start = time.perf_counter()
        try:
            yield
        except StageError:
            raise
        except DeitkitError as err:
            raise StageError(f"stage '{name}' failed: {err}") from None
        self.result.timings[name] = time.perf_counter() - start

    def run(self) -> QuickstartResult:
        """Every stage in order; the server is stopped whatever happens."""
        imported = self.sample_data()
        self.validate(imported.data_dir)
        finetuned = self.finetune(imported.train_mltable, imported.validation_mltable)
        classifier = self.evaluate(finetuned.mlflow_model_dir, imported.validation_mltable)
        validation_images = imported.validation_images()
        self.online(
            finetuned.mlflow_model_dir, spread(validation_images, ONLINE_IMAGES), classifier
        )
        self.batch(classifier, spread(validation_images, BATCH_IMAGES))
        return self.result

    def sample_data(self):
        from deitkit.data.digits import write_digits, write_digits_multilabel
        from deitkit.data.importer import import_dataset

        out = self.outputs
        with self.stage("sample data"):
            if self.task.is_multilabel:
                sample = write_digits_multilabel(
                    out.sample / "digits-multilabel",
                    count=self.sample_size or MULTILABEL_SAMPLE_COUNT,
                )
            else:
                sample = write_digits(out.sample / "digits", count=self.sample_size)
            imported = import_dataset(
                sample, out.data, split=VALIDATION_FRACTION, seed=SEED, task=self.task
            )
            shutil.rmtree(out.sample)  # the import holds a copy; keep one
            self.say(
                f"{imported.n_train} training and {imported.n_validation} validation images, "
                f"{len(imported.labels)} labels; MLTable folders in {out.data}"
            )
        self.result.paths["training data (MLTable)"] = imported.train_mltable
        self.result.paths["validation data (MLTable)"] = imported.validation_mltable
        self.result.facts["labels"] = len(imported.labels)
        return imported

    def validate(self, data_dir: Path) -> None:
        from deitkit.data.validate import validate_dataset

        with self.stage("validate"):
            report = validate_dataset(data_dir, task=self.task)
            self.say(report.to_text())
            if not report.ok:
                raise StageError("stage 'validate' failed: the sample data has errors (above)")
        self.result.facts["images"] = len(report.dataset)

    def finetune(self, train: Path, validation: Path):
        from deitkit.training.config import FinetuneConfig
        from deitkit.training.run import finetune

        training = {**COMMON_TRAINING, **TRAINING[self.task]}
        if self.epochs is not None:
            training["epochs"] = self.epochs
        with self.stage("fine-tune + package"):
            finetuned = finetune(
                FinetuneConfig(
                    model=MODELS[self.task],
                    train=str(train),
                    validation=str(validation),
                    output=str(self.outputs.finetune),
                    task=self.task,
                    resume=False,
                    **training,
                )
            )
        metric = self.task.primary_metric
        self.result.facts.update(
            model=MODELS[self.task],
            epochs=training["epochs"],
            precision=finetuned.metrics["precision"],
            validation_metric=(metric, finetuned.metrics[f"eval_{metric}"]),
        )
        self.result.paths["fine-tuning metrics"] = finetuned.output_dir / "metrics.json"
        self.result.paths["checkpoint (Hugging Face)"] = finetuned.model_dir
        self.result.paths["packaged model (MLflow)"] = finetuned.mlflow_model_dir
        return finetuned

    def evaluate(self, model_dir: Path, data: Path):
        """Evaluate the packaged model (loading it is its first check); the loaded Classifier."""
        from deitkit.evaluation import ARTIFACTS_DIR, METRICS_FILE, evaluate
        from deitkit.inference import load_classifier

        with self.stage("evaluate"):
            classifier = load_classifier(model_dir)
            evaluation = evaluate(classifier, data, self.outputs.evaluation)
            metric = evaluation.primary_metric
            self.say(
                f"{evaluation.n_scored} images: {metric} {evaluation.metrics[metric]:.4f}, "
                f"{len(evaluation.artifacts)} artifacts"
            )
        self.result.facts["evaluation"] = {
            name: evaluation.metrics[name]
            for name in (evaluation.primary_metric, "f1_score_macro", "AUC_macro")
        }
        # The engine evaluation ran on, chosen as the endpoints choose it, and why.
        choice = classifier.engine_choice
        self.result.facts["served_precision"] = f"{choice.name}: {choice.reason}"
        self.result.paths["evaluation report (HTML)"] = evaluation.report
        self.result.paths["evaluation metrics"] = self.outputs.evaluation / METRICS_FILE
        self.result.paths["evaluation artifacts"] = self.outputs.evaluation / ARTIFACTS_DIR
        return classifier

    def online(self, model_dir: Path, images: Sequence[Path], classifier) -> None:
        from deitkit.client_requests import request_body
        from deitkit.serving.server import LocalServer

        out = self.outputs.online
        with self.stage("online endpoint"):
            out.mkdir(parents=True)
            body = request_body(images)  # the model card's split form
            (out / "request.json").write_text(json.dumps(body, indent=2) + "\n")
            with LocalServer(model_dir, log_file=out / "server.log") as server:
                self.say(f"azureml-inference-server-http on {server.url} (POST /score)")
                start = time.perf_counter()
                answer = post_json(server.url + "/score", body)
                latency = time.perf_counter() - start
            self.say("server stopped")
            check_answer(answer, n_images=len(images), labels=classifier.labels, task=self.task)
            (out / "response.json").write_text(json.dumps(answer, indent=2) + "\n")
        self.result.facts["online"] = {
            "images": [path.name for path in images],
            "answer": answer,
            "latency_ms": latency * 1000,
        }
        self.result.paths["online endpoint files"] = out

    def batch(self, classifier, images: Sequence[Path]) -> None:
        from deitkit.batch import batch_score

        folder = self.outputs.batch_input
        with self.stage("batch endpoint"):
            folder.mkdir(parents=True)
            for path in images:
                # The class folder in the name shows the true label beside each prediction.
                shutil.copy2(path, folder / f"{path.parent.name}-{path.name}")
            summary = batch_score(classifier, folder, self.outputs.predictions)
            self.say(f"{summary.rows} rows, {summary.errors} with an error")
        self.result.facts["batch"] = {"rows": summary.rows, "errors": summary.errors}
        self.result.paths["batch predictions"] = self.outputs.predictions
