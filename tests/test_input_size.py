"""deitkit.input_size: resized checkpoints answer as transformers interpolates; bad sizes fail."""

from __future__ import annotations

import pytest
import torch
import transformers
from transformers import AutoConfig, AutoModelForImageClassification

from deitkit.errors import ConfigError
from deitkit.input_size import at_input_size, check_input_size

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 64, "image_size": 32, "patch_size": 8}  # fmt: skip
# The architectures and position-weight layouts deitkit resizes: BEiT as published
# (microsoft/beit-base-patch16-224: a relative position bias table per layer) and with the
# shared table plus absolute embeddings that BEiT's pre-training checkpoints use.
MODELS = {
    "deit": ("deit", "DeiTForImageClassification", {}),
    "deit-distilled": ("deit", "DeiTForImageClassificationWithTeacher", {}),
    "vit": ("vit", "ViTForImageClassification", {}),
    "beit": ("beit", "BeitForImageClassification", {"use_relative_position_bias": True}),
    "beit-shared": (
        "beit",
        "BeitForImageClassification",
        {"use_shared_relative_position_bias": True, "use_absolute_position_embeddings": True},
    ),
}


def _tiny(name: str) -> transformers.PreTrainedModel:
    model_type, class_name, fields = MODELS[name]
    torch.manual_seed(0)
    model = getattr(transformers, class_name)(AutoConfig.for_model(model_type, **TINY, **fields))
    with torch.no_grad():
        for param in model.parameters():
            # Far from their 0.02 init, so that each weight, the position ones too, shows.
            param.normal_(0, 0.5)
    return model.eval()


@pytest.mark.parametrize("size", [48, 16])
@pytest.mark.parametrize("name", list(MODELS))
def test_a_resized_model_answers_as_transformers_interpolation(name, size, tmp_path):
    model = _tiny(name)
    pixels = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(pixel_values=pixels, interpolate_pos_encoding=True).logits

    resized = at_input_size(model, size)
    resized.save_pretrained(tmp_path)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        native = reloaded(pixel_values=pixels).logits  # no flag: the checkpoint is at `size`

    assert reloaded.config.image_size == size
    torch.testing.assert_close(native, expected, rtol=0, atol=1e-5)
    with torch.no_grad():
        for param_name, param in reloaded.named_parameters():
            if "position" in param_name:
                param.zero_()
        without_positions = reloaded(pixel_values=pixels).logits
    assert (native - without_positions).abs().max() > 1e-3  # 100x the tolerance: they matter


def test_the_checkpoints_own_size_returns_the_model_itself():
    model = _tiny("vit")
    assert at_input_size(model, 32) is model


def test_training_mode_and_weights_other_than_positions_are_kept():
    model = _tiny("deit").train()
    resized = at_input_size(model, 48)
    assert resized.training
    old, new = model.state_dict(), resized.state_dict()
    changed = {k for k in old if old[k].shape != new[k].shape or not torch.equal(old[k], new[k])}
    assert changed == {"deit.embeddings.position_embeddings"}
    assert new["deit.embeddings.position_embeddings"].shape == (1, 6 * 6 + 2, 32)


@pytest.mark.parametrize(
    ("model_type", "fields", "size", "message"),
    [
        ("deit", {"patch_size": 16, "image_size": 224}, 8,
         r"^--image-size 8 is smaller than the patch size 16 of m; give a multiple of 16 "
         r"\(e.g. 16\), or -1 for its own size 224$"),
        ("vit", {"patch_size": 16, "image_size": 224}, 200,
         r"^--image-size 200 is not a multiple of the patch size 16 of m \(the last 8 pixel "),
        ("beit", {"patch_size": 16, "image_size": 224}, 390,
         r"not a multiple of the patch size 16 of m \(the last 6 pixel rows and columns would "
         r"be dropped\); give 384 or 400, or -1 for its own size 224$"),
        ("swin", {"patch_size": 4, "image_size": 224}, 384,
         r"^--image-size 384: m is a 'swin' model, whose input size deitkit cannot change "
         r"\(it can for deit, vit, beit\); give -1 for its own size 224$"),
        ("deit", {"patch_size": 16, "image_size": [224, 192]}, 224,
         r"^m: image_size \[224, 192\] is not square; deitkit trains square inputs$"),
    ],
)  # fmt: skip
def test_a_size_the_model_cannot_take_is_refused_in_one_line(model_type, fields, size, message):
    config = AutoConfig.for_model(model_type, **fields)
    with pytest.raises(ConfigError, match=message) as caught:
        check_input_size(config, size, ref="m")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("model_type", "size"),
    [("deit", 384), ("vit", 112), ("beit", 16), ("swin", 224), ("deit", 224)],
)
def test_sizes_the_model_can_take_pass(model_type, size):
    patch = 4 if model_type == "swin" else 16
    config = AutoConfig.for_model(model_type, patch_size=patch, image_size=224)
    check_input_size(config, size, ref="m")  # swin: its own size only
