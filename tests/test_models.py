"""Model references: scratch architectures and checkpoints at their own or a requested size."""

from __future__ import annotations

import pytest

from deitkit.errors import ConfigError
from deitkit.models import (
    load_model,
    parse_model_ref,
    scratch_config,
    scratch_image_size,
    scratch_patch_size,
)
from deitkit.tasks import Task

# A tiny shape, so that building the model takes milliseconds.
TINY = "num_hidden_layers=1,hidden_size=32,num_attention_heads=2,intermediate_size=32"


@pytest.mark.parametrize(
    ("ref", "requested", "size"),
    [
        ("scratch:deit-tiny", None, 224),  # nothing given: the published size
        ("scratch:deit-tiny", -1, 224),  # -1: the model's own, as Azure's image_width -1
        ("scratch:deit-tiny", 32, 32),
        ("scratch:vit-base:image_size=48", -1, 48),  # the reference's own override
        ("scratch:vit-base:image_size=48", None, 48),
        ("scratch:vit-base:image_size=48", 48, 48),
    ],
)
def test_scratch_size_is_the_requested_one_or_the_models_own(ref, requested, size):
    source = parse_model_ref(ref)
    assert scratch_image_size(source, requested) == size
    config = scratch_config(source, requested)
    assert config.image_size == size
    assert config.patch_size == scratch_patch_size(size)


@pytest.mark.parametrize(
    ("size", "patch"), [(224, 16), (128, 16), (64, 16), (48, 12), (32, 8), (16, 4), (8, 2)]
)
def test_scratch_patches_are_16_px_as_published_down_to_a_4x4_grid(size, patch):
    assert scratch_patch_size(size) == patch


def test_a_requested_size_that_disagrees_with_the_reference_is_refused():
    source = parse_model_ref("scratch:deit-tiny:image_size=48")
    with pytest.raises(ConfigError, match=r"--image-size 32 disagrees with image_size=48"):
        scratch_image_size(source, 32)


@pytest.mark.parametrize("requested", [None, -1])
def test_load_model_builds_a_scratch_model_at_its_own_size(requested):
    model = load_model(
        f"scratch:deit-tiny:image_size=16,{TINY}",
        labels=("a", "b"),
        task=Task.MULTICLASS,
        image_size=requested,
    )
    assert model.config.image_size == 16 and model.config.num_labels == 2


def test_load_model_keeps_a_checkpoints_own_size_or_resizes_it(tiny_checkpoint):
    folder = tiny_checkpoint("vit")  # 16 px, patch 4
    own = load_model(str(folder), labels=("a", "b"), task=Task.MULTICLASS, image_size=-1)
    assert own.config.image_size == 16
    resized = load_model(str(folder), labels=("a", "b"), task=Task.MULTICLASS, image_size=32)
    assert resized.config.image_size == 32 and resized.config.num_labels == 2
    assert resized.vit.embeddings.position_embeddings.shape == (1, 8 * 8 + 1, 32)


@pytest.mark.parametrize(
    ("kind", "size", "message"),
    [
        ("checkpoint", 2, r"--image-size 2 is smaller than the patch size 4 of "),
        ("checkpoint", 18, r"--image-size 18 is not a multiple of the patch size 4 of .*16 or 20"),
        ("scratch", 8, r"--image-size 8 is smaller than the patch size 16 of scratch:deit-tiny:"),
    ],
)
def test_load_model_refuses_a_size_the_model_cannot_take(kind, size, message, tiny_checkpoint):
    if kind == "scratch":
        ref = f"scratch:deit-tiny:patch_size=16,{TINY}"
    else:
        ref = str(tiny_checkpoint("deit"))
    with pytest.raises(ConfigError, match=message):
        load_model(ref, labels=("a", "b"), task=Task.MULTICLASS, image_size=size)


def test_an_mlflow_model_folder_resolves_to_its_weights_and_image_processor(tmp_path):
    from helpers import azure_model_import, save_catalog_model, save_hftransformersv2_model

    catalog = save_catalog_model(tmp_path / "catalog")
    source = parse_model_ref(str(catalog))
    assert source.kind == "local" and source.ref == str((catalog / "model").resolve())
    assert source.processor == str(catalog / "components" / "image_processor")
    imported = azure_model_import(catalog, tmp_path / "imported")
    flat = parse_model_ref(str(imported))
    assert flat.ref == flat.processor == str((imported / "model").resolve())
    legacy = save_hftransformersv2_model(tmp_path / "legacy")
    with pytest.raises(ConfigError, match=rf"--model '{legacy}': .*older hftransformersv2"):
        parse_model_ref(str(legacy))


# --- distilled students: both heads only when the run has a teacher ----------------------------

TINY_DISTILLED = (
    "scratch:deit-tiny-distilled:image_size=16,num_hidden_layers=1,hidden_size=32,"
    "num_attention_heads=4,intermediate_size=64"
)


@pytest.mark.parametrize(("with_teacher", "cls_name"), [
    (True, "DeiTForImageClassificationWithTeacher"), (False, "DeiTForImageClassification"),
])  # fmt: skip
def test_a_scratch_distilled_student_keeps_its_distillation_head_only_with_a_teacher(
    with_teacher, cls_name
):
    model = load_model(TINY_DISTILLED, labels=["a", "b"], task=Task.MULTICLASS,
                       with_teacher=with_teacher)  # fmt: skip
    assert type(model).__name__ == cls_name


def test_a_distilled_checkpoint_keeps_both_heads_for_new_labels_with_a_teacher(tiny_checkpoint):
    checkpoint = tiny_checkpoint("deit", distilled=True, labels=[f"c{i}" for i in range(7)])
    model = load_model(str(checkpoint), labels=["a", "b", "c"], task=Task.MULTICLASS,
                       with_teacher=True)  # fmt: skip
    assert type(model).__name__ == "DeiTForImageClassificationWithTeacher"
    assert model.cls_classifier.out_features == model.distillation_classifier.out_features == 3


def test_a_plain_deit_has_no_distillation_head_even_with_a_teacher(tiny_checkpoint):
    model = load_model(str(tiny_checkpoint("deit")), labels=["a", "b"], task=Task.MULTICLASS,
                       with_teacher=True)  # fmt: skip
    assert type(model).__name__ == "DeiTForImageClassification"
