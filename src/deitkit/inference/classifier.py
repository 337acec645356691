"""The one inference path (decode → preprocess → model → probabilities) that every caller shares."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoModelForImageClassification, PreTrainedModel

from deitkit.decisions import DEFAULT_TEMPERATURE, check_label_thresholds, check_temperature
from deitkit.errors import ConfigError, ImageError
from deitkit.images import ImageLimits, PixelBudget, limits_from_env, load_image
from deitkit.inference.checkpoint import has_safetensors, read_checkpoint
from deitkit.inference.engines import (
    TORCH_FP32,
    Engine,
    EngineChoice,
    Timer,
    choose_engine,
    engine_offers,
    read_record,
    requested,
    time_engine,
    without_record,
)
from deitkit.inference.engines.pixels import fixed_pixels
from deitkit.inference.engines.torch_engines import TorchEngine
from deitkit.inference.inputs import FetchUrl, decode_input
from deitkit.inference.prediction import Prediction
from deitkit.inference.threads import configure_threads
from deitkit.precision import Precision
from deitkit.tasks import Task, check_threshold
from deitkit.transforms import EvalTransform

log = logging.getLogger(__name__)

# Images per forward pass: bounds activation memory (DeiT-base at 224 px needs about 40 MB of
# activations per image in fp32) while keeping matrix multiplies large enough to be efficient.
MAX_BATCH_SIZE = 32
# Images per timed pass when engines are compared at start-up: what an online endpoint sees
# one request at a time, and what keeps DeiT-base's start-up short (docs/serving.md).
TIMING_BATCH = 1

Thresholds = Mapping[str, float] | Iterable[float]  # label → threshold, or one per label


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP  # `with_decisions`: leave this one as it is


class Classifier:
    """A checkpoint loaded once for inference: preprocessing, model, engine, labels and task.

    Build it with `Classifier.from_pretrained` (a checkpoint folder) or
    `deitkit.inference.load_packaged` (a packaged MLflow model).

    Attributes:
        labels: The label list, in the model's output order.
        task: Multiclass (softmax) or multilabel (sigmoid).
        threshold: Default multilabel threshold of the predictions (every label without its
            own).
        thresholds: Per-label multilabel thresholds in label order, or None.
        temperature: The logits are divided by it before the activation (1.0: not at all).
        model: The fp32 torch model.
        engine: What turns pixels into logits (`deitkit.inference.engines`): the model itself
            in fp32 or bf16, a torchao int8 copy, or the package's ONNX export in ONNX Runtime.
        engine_choice: The engine's name, why it was chosen, and the start-up timings.
        precision: The engine's precision (fp32, bf16 or int8) and the choice's reason.
        device: Where the torch model runs.
        transform: The checkpoint's evaluation preprocessing.
        limits: Checked on every input image before it is decoded.
        fetch_url: Downloads http(s) URL inputs; None refuses them.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        transform: EvalTransform,
        *,
        labels: Sequence[str],
        task: Task,
        threshold: float,
        thresholds: Thresholds | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        engine: Engine | None = None,
        engine_choice: EngineChoice | None = None,
        max_batch_size: int = MAX_BATCH_SIZE,
        limits: ImageLimits | None = None,
        fetch_url: FetchUrl | None = None,
    ):
        if (
            isinstance(max_batch_size, bool)
            or not isinstance(max_batch_size, int)
            or max_batch_size < 1
        ):
            raise ConfigError(f"max_batch_size must be an integer >= 1, got {max_batch_size!r}")
        self.model = model.eval()
        self.engine = engine or TorchEngine(TORCH_FP32, self.model)
        self.engine_choice = engine_choice or EngineChoice(self.engine.name, "given")
        self.transform = transform
        self.labels = list(labels)
        self.task = task
        self.threshold = check_threshold(threshold)
        self.thresholds = (
            None if thresholds is None else check_label_thresholds(thresholds, self.labels, task)
        )
        self.temperature = check_temperature(temperature)
        self.max_batch_size = max_batch_size
        self.limits = limits if limits is not None else limits_from_env()
        self.fetch_url = fetch_url

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        processor: str | Path | None = None,
        device: str | torch.device | None = None,
        engine: str | None = None,
        dtype: str | None = None,
        threshold: float | None = None,
        thresholds: Thresholds | None = None,
        temperature: float | None = None,
        max_batch_size: int = MAX_BATCH_SIZE,
        limits: ImageLimits | None = None,
        fetch_url: FetchUrl | None = None,
        timer: Timer | None = None,
    ) -> Classifier:
        """Load a Hugging Face checkpoint folder for inference, on the engine that suits it here.

        The engines the folder's engines.json allows (without one: torch fp32, and bf16 where
        native), that this machine runs, are timed briefly and the fastest serves
        (`deitkit.inference.engines.choose_engine`); one line in the log says which and why.

        Args:
            path: Folder with config.json and the weights (and preprocessor_config.json, and
                from `deitkit package` engines.json and the ONNX export).
            processor: Folder with preprocessor_config.json when it is kept apart from the
                weights (mlflow.transformers' components/image_processor/); None: `path`.
            device: Where to run; None: the GPU when there is one, else the CPU.
            engine: `auto`, `torch` or `onnx`; None: `$DEITKIT_INFERENCE_ENGINE`, else `auto`.
            dtype: `auto`, `fp32`, `bf16` or `int8` (`float32` and `bfloat16` are accepted
                too); None: `$DEITKIT_INFERENCE_DTYPE`, else `auto`.
            threshold: Multilabel threshold for every label: it replaces deitkit.json's
                per-label thresholds unless `thresholds` is given too; None: deitkit.json's
                threshold (else 0.5) and per-label thresholds.
            thresholds: Per-label multilabel thresholds (label → threshold, or one per label
                in label order); None: deitkit.json's (unless `threshold` is given).
            temperature: Divides the logits before the activation; None: deitkit.json's,
                else 1.0.
            max_batch_size: Most images per forward pass.
            limits: Image limits; None: `deitkit.images.limits_from_env()`.
            fetch_url: Downloads URL inputs; None refuses them.
            timer: Seconds per image of an engine on a batch; None: `time_engine`.

        Raises:
            ConfigError: the folder is not a usable image-classification checkpoint, `engine`
                or `dtype` (or their environment variables) is not allowed, or they ask for an
                engine that cannot run here.
        """
        path = Path(path)
        request = requested(engine, dtype)
        info = read_checkpoint(path)
        transform = EvalTransform.from_pretrained(
            path if processor is None else processor, model_type=info.config.model_type
        )
        threads = configure_threads()
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        try:
            model = AutoModelForImageClassification.from_pretrained(
                path,
                config=info.config,
                dtype=torch.float32,
                local_files_only=True,
                # Never fall back to pickled weights when safetensors are there.
                use_safetensors=True if has_safetensors(path) else None,
            )
        except (OSError, ValueError) as err:
            raise ConfigError(f"{path}: the model weights cannot be loaded: {err}") from None
        model = model.to(device).eval()
        offers = engine_offers(model, path, device=device, threads=threads)
        pixels = transform.normalize(fixed_pixels(TIMING_BATCH, *transform.output_size))
        chosen, choice = choose_engine(
            offers,
            read_record(path) or without_record(),
            request,
            pixels=pixels,
            timer=timer or time_engine,
        )
        log.info("loaded %s on %s, serving with %s: %s", path, device, choice.name, choice.reason)
        return cls(
            model,
            transform,
            labels=info.labels,
            task=info.task,
            threshold=info.threshold if threshold is None else threshold,
            thresholds=thresholds
            if thresholds is not None or threshold is not None
            else info.thresholds,
            temperature=info.temperature if temperature is None else temperature,
            engine=chosen,
            engine_choice=choice,
            max_batch_size=max_batch_size,
            limits=limits,
            fetch_url=fetch_url,
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def precision(self) -> Precision:
        """The serving engine's precision (fp32, bf16 or int8), with the engine and why."""
        choice = self.engine_choice
        return Precision(self.engine.dtype, f"{choice.name}: {choice.reason}")

    def with_engine(self, engine: Engine, choice: EngineChoice | None = None) -> Classifier:
        """This classifier running on `engine` instead; everything else is shared."""
        other = copy.copy(self)
        other.engine = engine
        other.engine_choice = choice or EngineChoice(engine.name, "given")
        return other

    def with_decisions(
        self,
        *,
        thresholds: Thresholds | _Keep | None = KEEP,
        temperature: float | _Keep = KEEP,
    ) -> Classifier:
        """This classifier deciding with other per-label thresholds (None: none) or another
        temperature; what is not given is kept, and the model and engine are shared.

        Raises:
            ConfigError: the thresholds do not fit the labels and task, or the temperature is
                not > 0.
        """
        other = copy.copy(self)
        if thresholds is not KEEP:
            other.thresholds = (
                None
                if thresholds is None
                else check_label_thresholds(thresholds, self.labels, self.task)
            )
        if temperature is not KEEP:
            other.temperature = check_temperature(temperature)
        return other

    def label_thresholds(self, threshold: float | None = None) -> tuple[float, ...]:
        """The threshold each label is decided at (multilabel), in label order, as `predicted`
        decides: `threshold` for every label when given, else the per-label thresholds, else
        the default threshold."""
        if threshold is None and self.thresholds is not None:
            return self.thresholds
        return (check_threshold(self.threshold if threshold is None else threshold),) * len(
            self.labels
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Probabilities (N, C) float32 on the CPU for normalised pixels (N, 3, H, W).

        The logits are divided by `temperature` first, unless it is 1.0 (outputs then stay
        bit-identical to an uncalibrated model's).
        """
        logits = self.engine(pixels)
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return self.task.activate(logits)

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Probabilities (N, C) float32, in label order, for RGB images.

        Raises:
            ImageError: an image is not an RGB PIL image, naming its index.
        """
        for index, image in enumerate(images):
            if not isinstance(image, Image.Image) or image.mode != "RGB":
                found = image.mode if isinstance(image, Image.Image) else type(image).__name__
                raise ImageError(
                    f"expected an RGB PIL image, got {found} (deitkit.images decodes to RGB)",
                    source=f"image {index}",
                )
        if not images:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        chunks = [
            self.forward(self.transform(images[start : start + self.max_batch_size]))
            for start in range(0, len(images), self.max_batch_size)
        ]
        return torch.cat(chunks).numpy()

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        """One Prediction per RGB image (see `predict_images`)."""
        return self.predictions(self.predict_images(images))

    def predictions(self, probs: np.ndarray) -> list[Prediction]:
        """Wrap rows of probabilities (from `predict_images`) as Predictions."""
        return [
            Prediction(
                [float(p) for p in row],
                list(self.labels),
                self.task,
                self.threshold,
                self.thresholds,
            )
            for row in probs
        ]

    def decode_input(
        self,
        value: object,
        *,
        source: str,
        fetch_url: FetchUrl | None = None,
        budget: PixelBudget | None = None,
    ) -> Image.Image:
        """Decode one base64 string or http(s) URL for this model; errors start with `source`.

        The image comes back reduced by `transform.reduce` as soon as it is decoded: about the
        model's input size, giving the same predictions as the full-size image.

        Args:
            value: The input as received.
            source: Names it in errors ("image 3").
            fetch_url: Downloads this input's URL in place of the classifier's `fetch_url`.
            budget: The request's pixel budget, charged from the header before decoding.
        """
        return decode_input(
            value,
            source=source,
            limits=self.limits,
            min_size=self.transform.min_size,
            reduce=self.transform.reduce,
            budget=budget,
            fetch_url=fetch_url or self.fetch_url,
        )

    def decode_file(self, path: str | Path, *, budget: PixelBudget | None = None) -> Image.Image:
        """Decode an image file as `decode_input` decodes inputs; errors start with the path."""
        return load_image(
            path,
            limits=self.limits,
            min_size=self.transform.min_size,
            reduce=self.transform.reduce,
            budget=budget,
        )

    def decode_inputs(self, values: Sequence[object]) -> list[Image.Image]:
        """Decode base64 strings or http(s) URLs; the first bad one raises `image <index>: ...`."""
        return [self.decode_input(value, source=f"image {i}") for i, value in enumerate(values)]

    def predict_inputs(self, values: Sequence[object]) -> list[Prediction]:
        """Decode then predict (see `decode_inputs` and `predict`)."""
        return self.predict(self.decode_inputs(values))

    def __repr__(self) -> str:
        return (
            f"Classifier({len(self.labels)} labels, {self.task.value}, {self.engine.name} "
            f"on {self.device})"
        )
