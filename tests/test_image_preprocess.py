import json

import numpy as np
import pytest
import torch
from PIL import Image

from tunesmith.data.image_preprocess import ImageTransform
from tunesmith.recipe import Preprocess

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def noise_image(width: int = 40, height: int = 30, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def plain(**overrides) -> ImageTransform:
    """Identity-like normalisation, so output values are pixel / 255."""
    return ImageTransform(**{"size": 16, "mean": (0, 0, 0), "std": (1, 1, 1), **overrides})


@pytest.mark.parametrize("augment", [False, True])
def test_shape_and_dtype(augment):
    transform = ImageTransform(size=24, mean=MEAN, std=STD, augment=augment)
    out = transform(noise_image(50, 20), np.random.default_rng(0))
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32
    assert out.is_contiguous()
    gray = transform(noise_image(20, 50).convert("L"), np.random.default_rng(0))
    assert gray.shape == (3, 24, 24)


def test_eval_transform_is_deterministic():
    transform = ImageTransform(size=16, mean=MEAN, std=STD, augment=False)
    image = noise_image()
    first = transform(image, np.random.default_rng(0))
    assert torch.equal(first, transform(image, np.random.default_rng(1)))
    assert torch.equal(first, transform(image))


def test_centre_crop_keeps_the_centre():
    image = Image.new("RGB", (100, 60), (255, 255, 255))
    image.paste((255, 0, 0), (40, 20, 60, 40))  # a 20 px red square in the middle
    tight = plain(crop_fraction=0.25)(image)  # the crop is 15 source px: all red
    assert torch.allclose(tight[0], torch.ones(16, 16), atol=0.02)
    assert torch.allclose(tight[1:], torch.zeros(2, 16, 16), atol=0.02)
    full = plain(crop_fraction=1.0)(image)  # 60 x 60 centre: white corners, red middle
    assert full[1, 0, 0] > 0.98 and full[1, 8, 8] < 0.02


def test_normalisation_maps_the_mean_to_zero():
    transform = ImageTransform(size=8, mean=MEAN, std=STD)
    mean_colour = tuple(round(m * 255) for m in MEAN)
    out = transform(Image.new("RGB", (12, 12), mean_colour))
    assert out.abs().max() < 0.01
    white = transform(Image.new("RGB", (12, 12), (255, 255, 255)))
    expected = torch.tensor([(1 - m) / s for m, s in zip(MEAN, STD, strict=True)])
    assert torch.allclose(white[:, 3, 3], expected, atol=1e-5)


def test_augment_is_reproducible_with_a_seed():
    transform = ImageTransform(size=16, mean=MEAN, std=STD, augment=True)
    image = noise_image()
    a = transform(image, np.random.default_rng(7))
    b = transform(image, np.random.default_rng(7))
    c = transform(image, np.random.default_rng(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a, transform(image, np.random.default_rng(9)))
    rng = np.random.default_rng(0)  # one generator through a loop: each draw differs
    assert not torch.equal(transform(image, rng), transform(image, rng))


def test_flip_on_and_off():
    half = Image.new("RGB", (20, 20), (0, 0, 0))
    half.paste((255, 255, 255), (10, 0, 20, 20))  # right half white
    # square image and min_crop_scale 1: the crop is always the whole image
    kwargs = {"augment": True, "min_crop_scale": 1.0, "color_jitter": 0.0, "size": 20}
    flipping = plain(flip=True, **kwargs)
    left_means = {
        round(float(flipping(half, np.random.default_rng(s))[0, :, :10].mean())) for s in range(12)
    }
    assert left_means == {0, 1}  # some runs mirrored, some not
    steady = plain(flip=False, **kwargs)
    for seed in range(12):
        out = steady(half, np.random.default_rng(seed))
        assert out[0, :, :8].max() < 0.05 and out[0, :, 12:].min() > 0.95


def gradient(width: int, height: int) -> Image.Image:
    """Red channel = x position (0 at the left edge, 255 at the right)."""
    red = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    pixels = np.stack([red, np.zeros_like(red), np.zeros_like(red)], axis=-1)
    return Image.fromarray(np.rint(pixels).astype(np.uint8))


def test_random_resized_crop_keeps_a_random_share_of_the_image():
    transform = plain(augment=True, min_crop_scale=0.5, color_jitter=0.0, flip=False, size=32)
    image = gradient(64, 64)
    spans, lefts = [], []
    for seed in range(20):
        row = transform(image, np.random.default_rng(seed))[0, 16]
        spans.append(float(row[-1] - row[0]))
        lefts.append(float(row[0]))
    # width share >= sqrt(0.5 * 3/4) ~ 0.61 of the image, and less than all of it sometimes
    assert min(spans) > 0.55 and min(spans) < 0.95
    assert max(lefts) > 0.05  # crops are not all anchored at the left edge


def test_random_crop_falls_back_to_the_centre_of_a_very_wide_image():
    # no crop of the whole area with an aspect ratio up to 4/3 fits in 100 x 10
    transform = plain(augment=True, min_crop_scale=1.0, color_jitter=0.0, flip=False)
    row = transform(gradient(100, 10), np.random.default_rng(0))[0, 8]
    # the centred 13 x 10 box: red from about x = 43 to 56 of 100
    assert 0.40 < float(row[0]) < 0.47 and 0.52 < float(row[-1]) < 0.59


def test_color_jitter_changes_colours_only_when_on():
    image = Image.new("RGB", (16, 16), (120, 80, 40))
    base = {"augment": True, "min_crop_scale": 1.0, "flip": False}
    jittered = plain(color_jitter=0.5, **base)(image, np.random.default_rng(1))
    untouched = plain(color_jitter=0.0, **base)(image, np.random.default_rng(1))
    assert torch.allclose(untouched[:, 0, 0], torch.tensor([120, 80, 40]) / 255, atol=1e-6)
    assert not torch.allclose(jittered, untouched, atol=0.01)


def test_median_denoise_removes_a_salt_pixel():
    image = Image.new("RGB", (9, 9), (100, 100, 100))
    image.putpixel((4, 4), (255, 255, 255))
    noisy = plain(size=9, crop_fraction=1.0)(image)
    clean = plain(size=9, crop_fraction=1.0, denoise="median", denoise_size=3)(image)
    assert noisy.max() > 0.9
    assert torch.allclose(clean, torch.full_like(clean, 100 / 255), atol=1e-6)
    blurred = plain(size=9, crop_fraction=1.0, denoise="gaussian", denoise_size=1)(image)
    assert 100 / 255 < blurred.max() < noisy.max()


def test_bad_settings_raise_value_error():
    with pytest.raises(ValueError, match="must be odd"):
        plain(denoise="median", denoise_size=4)
    with pytest.raises(ValueError, match="denoise must be one of"):
        plain(denoise="bilateral")
    with pytest.raises(ValueError, match="mean needs 3 values"):
        ImageTransform(size=8, mean=(0.5,), std=(1, 1, 1))
    with pytest.raises(ValueError, match="std must be positive"):
        ImageTransform(size=8, mean=(0, 0, 0), std=(1, 0, 1))


def test_to_dict_from_dict_round_trip():
    transform = ImageTransform(
        size=32, mean=MEAN, std=STD, crop_fraction=0.9, denoise="median", denoise_size=5
    )
    saved = json.loads(json.dumps(transform.to_dict()))
    restored = ImageTransform.from_dict(saved)
    assert restored == transform
    assert isinstance(restored.mean, tuple)
    image = noise_image()
    assert torch.equal(restored(image), transform(image))
    with pytest.raises(ValueError, match="unknown image transform setting"):
        ImageTransform.from_dict({**saved, "sharpen": 1})


def test_from_recipe():
    preprocess = Preprocess(image_size=64, denoise="gaussian", denoise_size=2, flip=False)
    train = ImageTransform.from_recipe(preprocess, 224, MEAN, STD, train=True)
    evaluate = ImageTransform.from_recipe(preprocess, 224, MEAN, STD, train=False)
    assert train.size == 64 and train.augment and not evaluate.augment
    assert (train.denoise, train.denoise_size, train.flip) == ("gaussian", 2, False)
    default = ImageTransform.from_recipe(Preprocess(augment=False), 224, MEAN, STD, train=True)
    assert default.size == 224 and not default.augment and default.std == STD
