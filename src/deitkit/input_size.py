"""A checkpoint at another input size: its position weights resized as transformers interpolates."""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from deitkit.errors import ConfigError

log = logging.getLogger(__name__)

# The architectures whose size-dependent weights transformers knows how to interpolate: absolute
# position embeddings (`interpolate_pos_encoding`, DeiT incl. distilled, ViT, BEiT) and BEiT's
# relative position bias tables (resampled to the input's patch grid on every forward pass).
RESIZABLE = ("deit", "vit", "beit")


def square(value: int | list[int] | tuple[int, ...], field: str, ref: str) -> int:
    """The side of a square `image_size` or `patch_size` config value.

    Raises:
        ConfigError: a non-square value; deitkit trains square inputs.
    """
    if isinstance(value, list | tuple):
        if len(set(value)) != 1:
            raise ConfigError(
                f"{ref}: {field} {list(value)} is not square; deitkit trains square inputs"
            )
        value = value[0]
    return int(value)


def check_input_size(config: PretrainedConfig, size: int, *, ref: str) -> None:
    """Refuse a square input `size` that the model `ref` (whose config is `config`) cannot take.

    A size is at least the patch size. Another size than the checkpoint's own needs an
    architecture in `RESIZABLE` and a multiple of the patch size: the patch embedding's strided
    convolution would silently drop the last `size % patch` rows and columns of every image.

    Raises:
        ConfigError: naming the size, the model and the sizes that would work.
    """
    patch = square(config.patch_size, "patch_size", ref)
    own = square(config.image_size, "image_size", ref)
    below, above = max(patch, size // patch * patch), (size // patch + 1) * patch
    if size < patch:
        raise ConfigError(
            f"--image-size {size} is smaller than the patch size {patch} of {ref}; give a "
            f"multiple of {patch} (e.g. {above}), or -1 for its own size {own}"
        )
    if size == own:
        return
    if config.model_type not in RESIZABLE:
        raise ConfigError(
            f"--image-size {size}: {ref} is a {config.model_type!r} model, whose input size "
            f"deitkit cannot change (it can for {', '.join(RESIZABLE)}); give -1 for its own "
            f"size {own}"
        )
    if size % patch:
        raise ConfigError(
            f"--image-size {size} is not a multiple of the patch size {patch} of {ref} (the "
            f"last {size % patch} pixel rows and columns would be dropped); give {below} or "
            f"{above}, or -1 for its own size {own}"
        )


def at_input_size(model: PreTrainedModel, size: int) -> PreTrainedModel:
    """`model` rebuilt for `size` x `size` inputs, answering as transformers' interpolation does.

    Each absolute position embedding is replaced by what the module's own
    `interpolate_pos_encoding` computes at `size` (bicubic), and each BEiT relative position
    bias table by what its forward pass resamples it to (bilinear), so the rebuilt model gives
    the same logits as `model(pixels, interpolate_pos_encoding=True)` while running natively at
    `size`: its config says `image_size: size`, and any consumer of the saved checkpoint
    (transformers' pipeline, ONNX export) needs no flag. Check the size with
    `check_input_size` first.
    """
    own = square(model.config.image_size, "image_size", model.name_or_path)
    if size == own:
        return model
    state = model.state_dict()
    with torch.no_grad():
        for name, module in model.named_modules():
            prefix = f"{name}." if name else ""
            if isinstance(getattr(module, "position_embeddings", None), nn.Parameter):
                state[prefix + "position_embeddings"] = _position_embeddings(module, size)
            if isinstance(getattr(module, "relative_position_bias_table", None), nn.Parameter):
                patch = square(model.config.patch_size, "patch_size", model.name_or_path)
                state[prefix + "relative_position_bias_table"] = _relative_position_table(
                    module.relative_position_bias_table, module.window_size, size // patch
                )
    config = copy.deepcopy(model.config)
    config.image_size = size
    resized = type(model)(config).to(model.dtype)
    # strict: a size-dependent weight this function does not know fails here, not in training.
    resized.load_state_dict(state, strict=True)
    log.info("resized %s from %d to %d px inputs", model.name_or_path or "the model", own, size)
    return resized.train(model.training)


def _position_embeddings(embeddings: nn.Module, size: int) -> torch.Tensor:
    """The module's position embeddings at `size`, from its own `interpolate_pos_encoding`."""
    table = embeddings.position_embeddings
    special = table.shape[1] - embeddings.patch_embeddings.num_patches  # CLS (+ distillation)
    patch = square(embeddings.patch_size, "patch_size", type(embeddings).__name__)
    # Only the shape of the token sequence is read: a meta tensor stands in for it.
    tokens = torch.empty(1, special + (size // patch) ** 2, table.shape[2], device="meta")
    return embeddings.interpolate_pos_encoding(tokens, size, size).detach().clone()


def _relative_position_table(
    table: torch.Tensor, window: tuple[int, int], grid: int
) -> torch.Tensor:
    """BEiT's relative position bias table resampled from `window` to a `grid` x `grid` window.

    The same steps as `BeitRelativePositionBias.forward` in transformers 5: the
    (2h-1) x (2w-1) relative distances are resized bilinearly; the last three rows (CLS to
    token, token to CLS, CLS to CLS) are kept.
    """
    old_height, old_width = 2 * window[0] - 1, 2 * window[1] - 1
    new_side = 2 * grid - 1
    distances = old_height * old_width
    grid_table = table[:distances].reshape(1, old_width, old_height, -1).permute(0, 3, 1, 2)
    grid_table = nn.functional.interpolate(grid_table, size=(new_side, new_side), mode="bilinear")
    grid_table = grid_table.permute(0, 2, 3, 1).reshape(new_side * new_side, -1)
    return torch.cat([grid_table, table[distances:]]).detach().clone()
