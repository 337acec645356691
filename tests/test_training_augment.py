"""deitkit.training.augment on generated uint8 batches, checked pixel by pixel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from deitkit.errors import ConfigError
from deitkit.training.augment import AugmentConfig, EvalCrop, TrainAugment
from deitkit.transforms import EvalTransform

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
# With mean 0 and std 1 the normalised values are the [0, 1] intensities: mixing shows directly.
IDENTITY = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}


def _natural(count: int, size: int, seed: int = 0) -> torch.Tensor:
    """uint8 (count, 3, size, size): gradients, an off-centre square and noise, so every image
    is asymmetric left to right and has structure that colour and geometry changes alter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    base = np.stack([x * 200 / size, y * 200 / size, (x + y) * 100 / size])
    images = np.repeat(base[None], count, axis=0)
    images[:, :, size // 4 : size // 2, size // 8 : size // 3] = 240
    images += rng.normal(0, 10, images.shape) + rng.uniform(-30, 30, (count, 3, 1, 1))
    return torch.from_numpy(np.clip(images, 1, 254).astype(np.uint8))


def _zeros_and_ones(count: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First half all-black images of class 0, second half all-white images of class 1."""
    images = torch.zeros(count, 3, size, size, dtype=torch.uint8)
    images[count // 2 :] = 255
    return images, (torch.arange(count) >= count // 2).long()


def _augment(config: AugmentConfig, size: int, *, labels: int = 2, multilabel: bool = False,
             mean=HALF, std=HALF) -> TrainAugment:  # fmt: skip
    return TrainAugment(config, output_size=(size, size), mean=mean, std=std,
                        num_labels=labels, multilabel=multilabel)  # fmt: skip


def test_eval_crop_is_a_centre_crop_then_normalise():
    images = torch.randint(0, 256, (4, 3, 40, 50), dtype=torch.uint8)
    crop = EvalCrop(output_size=(32, 32), mean=IMAGENET_MEAN, std=IMAGENET_STD)

    out = crop(images)

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    expected = (images[:, :, 4:36, 9:41].float() / 255 - mean) / std
    assert out.shape == (4, 3, 32, 32) and out.dtype == torch.float32 and out.is_contiguous()
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert torch.equal(crop(images), out)  # deterministic
    same_size = EvalCrop(output_size=(40, 50), mean=HALF, std=HALF)(images)
    torch.testing.assert_close(same_size, images.float() / 127.5 - 1, atol=1e-6, rtol=0)


def test_eval_crop_gives_the_evaluation_transform_values_bit_for_bit():
    images = _natural(3, 37, seed=1)
    pil = [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in images]
    served = EvalTransform(None, (32, 32), IMAGENET_MEAN, IMAGENET_STD)(pil)

    trained = EvalCrop(output_size=(32, 32), mean=IMAGENET_MEAN, std=IMAGENET_STD)(images)

    assert torch.equal(trained, served)


def test_default_pipeline_crops_flips_and_jitters_within_the_normalised_range():
    images, targets = _natural(8, 64), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    augment = _augment(AugmentConfig(), 56, labels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    evaluation = EvalCrop(output_size=(56, 56), mean=IMAGENET_MEAN, std=IMAGENET_STD)(images)

    torch.manual_seed(0)
    pixels, out_targets = augment(images, targets)

    assert pixels.shape == (8, 3, 56, 56) and pixels.dtype == torch.float32
    assert out_targets is targets and not augment.mixes_targets
    low = (0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    high = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    per_channel = pixels.transpose(0, 1).reshape(3, -1)
    assert (per_channel.amin(1) >= low - 1e-5).all() and (per_channel.amax(1) <= high + 1e-5).all()
    assert ((pixels - evaluation).abs().amax((1, 2, 3)) > 0.1).all()  # every image changed
    torch.manual_seed(0)
    assert torch.equal(augment(images, targets)[0], pixels)  # the global seed repeats it
    assert not torch.equal(augment(images, targets)[0], pixels)


def test_disabled_config_is_exactly_the_eval_crop():
    images, targets = _natural(6, 37), torch.arange(6)
    augment = _augment(AugmentConfig(enabled=False), 32, labels=6)

    pixels, out_targets = augment(images, targets)

    assert torch.equal(pixels, EvalCrop(output_size=(32, 32), mean=HALF, std=HALF)(images))
    assert torch.equal(out_targets, targets) and out_targets.dtype == torch.int64


def test_flip_and_colour_jitter_each_happen_to_about_half_the_images():
    images = _natural(400, 16)
    evaluation = EvalCrop(output_size=(16, 16), mean=HALF, std=HALF)(images)
    # The crop covers the whole image at the same size, so only flip and jitter act.
    geometry_only = AugmentConfig(scale=(1.0, 1.0), ratio=(1.0, 1.0), color_jitter=0.0)
    torch.manual_seed(1)

    pixels, _ = _augment(geometry_only, 16)(images, torch.zeros(400, dtype=torch.long))

    same = (pixels - evaluation).abs().amax((1, 2, 3)) < 1e-5
    mirrored = (pixels - evaluation.flip(-1)).abs().amax((1, 2, 3)) < 1e-5
    assert (same ^ mirrored).all()
    assert 0.4 < mirrored.float().mean() < 0.6

    pixels, _ = _augment(AugmentConfig(scale=(1.0, 1.0), ratio=(1.0, 1.0)), 16)(
        images, torch.zeros(400, dtype=torch.long)
    )
    same = (pixels - evaluation).abs().amax((1, 2, 3)) < 1e-5
    mirrored = (pixels - evaluation.flip(-1)).abs().amax((1, 2, 3)) < 1e-5
    assert 0.4 < (~(same | mirrored)).float().mean() < 0.6  # jittered (p=0.5)


def test_rand_augment_changes_pixel_statistics():
    images = _natural(32, 37, seed=2)
    evaluation = EvalCrop(output_size=(32, 32), mean=HALF, std=HALF)(images)
    augment = _augment(AugmentConfig(enabled=False, rand_augment=True), 32)
    torch.manual_seed(2)

    changed = []
    for _ in range(5):
        pixels, _ = augment(images, torch.zeros(32, dtype=torch.long))
        assert pixels.shape == evaluation.shape and pixels.dtype == torch.float32
        mean_shift = (pixels.mean((1, 2, 3)) - evaluation.mean((1, 2, 3))).abs()
        std_shift = (pixels.std((1, 2, 3)) - evaluation.std((1, 2, 3))).abs()
        changed.append(((mean_shift > 0.01) | (std_shift > 0.01)).float().mean())
    assert torch.stack(changed).mean() > 0.5


def test_mixup_targets_carry_the_image_weights():
    images, targets = _zeros_and_ones(64, 8)
    augment = _augment(AugmentConfig(enabled=False, mixup_alpha=0.8), 8, **IDENTITY)
    torch.manual_seed(3)

    pixels, soft = augment(images, targets)

    assert augment.mixes_targets and soft.shape == (64, 2) and soft.dtype == torch.float32
    torch.testing.assert_close(soft.sum(1), torch.ones(64))
    # A mix of two flat images is flat, its grey level the weight of the white (class 1) image.
    assert (pixels.amax((1, 2, 3)) - pixels.amin((1, 2, 3)) < 1e-6).all()
    torch.testing.assert_close(pixels[:, 0, 0, 0], soft[:, 1], atol=1e-6, rtol=0)
    assert ((soft[:, 1] > 0.05) & (soft[:, 1] < 0.95)).any()


def test_mixup_lambda_follows_beta_alpha():
    images, classes = torch.zeros(512, 3, 2, 2, dtype=torch.uint8), torch.arange(512)
    # Beta(0.1, 0.1) puts lambda near 0 or 1; Beta(4, 4) near 0.5 (kornia alone draws uniformly).
    for alpha, middle_share in ((0.1, (0.0, 0.3)), (4.0, (0.7, 1.0))):
        augment = _augment(AugmentConfig(enabled=False, mixup_alpha=alpha), 2, labels=512)
        torch.manual_seed(5)
        _, soft = augment(images, classes)
        partner_weight = 1 - soft[classes, classes]
        partner_weight = partner_weight[partner_weight > 0]  # a row paired with itself says nothing
        middle = ((partner_weight > 0.2) & (partner_weight < 0.8)).float().mean()
        assert middle_share[0] <= middle <= middle_share[1]


def test_cutmix_target_weight_is_the_pasted_area():
    images, targets = _zeros_and_ones(64, 16)
    augment = _augment(AugmentConfig(enabled=False, cutmix_alpha=1.0), 16, **IDENTITY)
    torch.manual_seed(6)

    pixels, soft = augment(images, targets)

    torch.testing.assert_close(soft.sum(1), torch.ones(64))
    assert set(pixels.unique().tolist()) <= {0.0, 1.0}  # pasted, never blended
    torch.testing.assert_close(pixels.mean((1, 2, 3)), soft[:, 1], atol=1e-6, rtol=0)
    for image, own in zip(pixels[:, 0], targets, strict=True):
        pasted = image != own.float()
        if pasted.any():  # the pasted pixels form one rectangle
            rows, cols = pasted.any(1).nonzero(), pasted.any(0).nonzero()
            assert pasted[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
    assert ((soft[:, 1] > 0.05) & (soft[:, 1] < 0.95)).any()


def test_mixup_and_cutmix_together_alternate_per_batch():
    images, targets = _zeros_and_ones(32, 8)
    augment = _augment(
        AugmentConfig(enabled=False, mixup_alpha=0.8, cutmix_alpha=1.0), 8, **IDENTITY
    )
    torch.manual_seed(7)
    kinds = set()
    for _ in range(20):
        pixels, soft = augment(images, targets)
        torch.testing.assert_close(pixels.mean((1, 2, 3)), soft[:, 1], atol=1e-5, rtol=0)
        blended = ((pixels > 1e-6) & (pixels < 1 - 1e-6)).any()
        kinds.add("mixup" if blended else "cutmix")
    assert kinds == {"mixup", "cutmix"}


def test_multilabel_mixing_mixes_the_indicator_vectors():
    images, _ = _zeros_and_ones(32, 8)
    # Black images are labelled {0, 2}, white ones {1, 2}: label 2 is shared by every image.
    indicators = torch.tensor([[1.0, 0.0, 1.0]] * 16 + [[0.0, 1.0, 1.0]] * 16)
    for config in (AugmentConfig(enabled=False, mixup_alpha=0.8),
                   AugmentConfig(enabled=False, cutmix_alpha=1.0)):  # fmt: skip
        augment = _augment(config, 8, labels=3, multilabel=True, **IDENTITY)
        torch.manual_seed(8)

        pixels, soft = augment(images, indicators)

        white = pixels.mean((1, 2, 3))
        torch.testing.assert_close(soft[:, 1], white, atol=1e-6, rtol=0)
        torch.testing.assert_close(soft[:, 0], 1 - white, atol=1e-6, rtol=0)
        torch.testing.assert_close(soft[:, 2], torch.ones(32))  # a shared label stays certain
        assert ((white > 0.05) & (white < 0.95)).any()


def test_multilabel_targets_pass_through_without_mixing():
    indicators = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    augment = _augment(AugmentConfig(), 32, labels=3, multilabel=True)

    pixels, targets = augment(_natural(2, 37), indicators)

    assert pixels.shape == (2, 3, 32, 32) and torch.equal(targets, indicators)


def test_random_erasing_at_probability_one_fills_a_rectangle_with_the_mean():
    images = _natural(16, 37, seed=3)  # values 1..254: none normalises to exactly 0
    augment = _augment(AugmentConfig(enabled=False, random_erasing=1.0), 32)
    evaluation = EvalCrop(output_size=(32, 32), mean=HALF, std=HALF)(images)
    torch.manual_seed(9)

    pixels, _ = augment(images, torch.zeros(16, dtype=torch.long))

    for out, reference in zip(pixels, evaluation, strict=True):
        erased = (out == 0).all(0)
        assert erased.any() and not erased.all()
        rows, cols = erased.any(1).nonzero(), erased.any(0).nonzero()
        assert erased[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
        assert torch.equal(out[:, ~erased], reference[:, ~erased])


def test_deit_recipe_repeats_under_the_same_seed():
    images, targets = _natural(16, 40), torch.arange(16) % 4
    config = AugmentConfig(rand_augment=True, mixup_alpha=0.8, cutmix_alpha=1.0,
                           random_erasing=0.25)  # fmt: skip
    augment = _augment(config, 32, labels=4)
    runs = []
    for _ in range(2):
        torch.manual_seed(10)
        runs.append(augment(images, targets))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert runs[0][0].shape == (16, 3, 32, 32) and runs[0][1].shape == (16, 4)
    torch.testing.assert_close(runs[0][1].sum(1), torch.ones(16))


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"mixup_alpha": -0.1}, "mixup_alpha"),
        ({"cutmix_alpha": float("inf")}, "cutmix_alpha"),
        ({"random_erasing": 1.5}, "random_erasing"),
        ({"scale": (0.0, 1.0)}, "scale"),
        ({"scale": (0.5, 1.2)}, "scale"),
        ({"ratio": (2.0, 1.0)}, "ratio"),
        ({"color_jitter": "0.4"}, "color_jitter"),
    ],
)
def test_bad_config_names_the_field(fields, message):
    with pytest.raises(ConfigError, match=message):
        AugmentConfig(**fields)


def test_bad_batches_are_refused_with_the_shapes():
    augment = _augment(AugmentConfig(), 32, labels=3)
    images = _natural(2, 37)
    with pytest.raises(ValueError, match="uint8"):
        augment(images.float(), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"int64 \(2,\)"):
        augment(images, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        augment(images, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"float \(2, 3\)"):
        _augment(AugmentConfig(), 32, labels=3, multilabel=True)(images, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="smaller than the crop"):
        EvalCrop(output_size=(40, 40), mean=HALF, std=HALF)(images)
    with pytest.raises(ConfigError, match="std"):
        EvalCrop(output_size=(32, 32), mean=HALF, std=(0.5, 0.0, 0.5))


def test_full_image_crop_resamples_at_pixel_centres():
    images = _natural(4, 32, seed=4)
    config = AugmentConfig(scale=(1.0, 1.0), ratio=(1.0, 1.0), color_jitter=0.0)
    torch.manual_seed(11)

    pixels, _ = _augment(config, 16, **IDENTITY)(images, torch.zeros(4, dtype=torch.long))

    # Halving with half-pixel centres (as PIL and torchvision) averages each 2x2 block.
    halved = torch.nn.functional.avg_pool2d(images.float() / 255, 2)
    assert all(
        torch.allclose(out, ref, atol=1e-5) or torch.allclose(out, ref.flip(-1), atol=1e-5)
        for out, ref in zip(pixels, halved, strict=True)
    )
