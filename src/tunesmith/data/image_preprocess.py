"""Image to model input: denoise, resize and crop (random in training), normalise.

The transform is a small dataclass saved with the run (`to_dict`) so that `predict` sees
exactly the evaluation preprocessing of training. All randomness comes from the numpy
Generator passed in, so a seeded data loader gives the same crops every run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter

from tunesmith.recipe import Preprocess

DENOISE = ("none", "median", "gaussian")
_LOG_RATIO = (math.log(3 / 4), math.log(4 / 3))  # random crop aspect ratio range
_CROP_TRIES = 10


@dataclass
class ImageTransform:
    """PIL image -> (3, size, size) float32 tensor normalised with mean/std.

    Order: denoise -> resize and crop (evaluation: shorter side to round(size /
    crop_fraction), centre square; training with `augment`: random resized crop, random
    horizontal flip, colour jitter) -> tensor in [0, 1] -> (x - mean) / std."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_fraction: float = 0.875
    denoise: str = "none"
    denoise_size: int = 3
    augment: bool = False
    min_crop_scale: float = 0.5
    flip: bool = True
    color_jitter: float = 0.2

    def __post_init__(self) -> None:
        self.size = int(self.size)
        self.mean = _triple(self.mean, "mean")
        self.std = _triple(self.std, "std")
        if self.size < 1:
            raise ValueError(f"size must be a positive number of pixels, got {self.size}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")
        if not 0 < self.crop_fraction <= 1:
            raise ValueError(f"crop_fraction must be in (0, 1], got {self.crop_fraction}")
        if self.denoise not in DENOISE:
            raise ValueError(f"denoise must be one of {', '.join(DENOISE)}, got {self.denoise!r}")
        if self.denoise_size < 1:
            raise ValueError(f"denoise_size must be at least 1, got {self.denoise_size}")
        if self.denoise == "median" and self.denoise_size % 2 == 0:
            raise ValueError(
                f"denoise_size {self.denoise_size}: a median filter window must be odd "
                f"(e.g. {self.denoise_size + 1})"
            )
        if not 0 < self.min_crop_scale <= 1:
            raise ValueError(f"min_crop_scale must be in (0, 1], got {self.min_crop_scale}")
        if not 0 <= self.color_jitter <= 1:
            raise ValueError(f"color_jitter must be in [0, 1], got {self.color_jitter}")
        # x / 255 then (x - mean) / std, folded into one multiply-add per pixel
        std = np.asarray(self.std, dtype=np.float32)
        self._scale = (1.0 / (255.0 * std)).astype(np.float32)
        self._offset = (-np.asarray(self.mean, dtype=np.float32) / std).astype(np.float32)

    @classmethod
    def from_recipe(
        cls,
        preprocess: Preprocess,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        train: bool,
    ) -> ImageTransform:
        """The recipe's transform; `size`, `mean`, `std` are the model's defaults
        (preprocess.image_size overrides `size`); augmentation only when `train`."""
        return cls(
            size=preprocess.image_size or size,
            mean=tuple(mean),
            std=tuple(std),
            crop_fraction=preprocess.crop_fraction,
            denoise=preprocess.denoise,
            denoise_size=preprocess.denoise_size,
            augment=train and preprocess.augment,
            min_crop_scale=preprocess.min_crop_scale,
            flip=preprocess.flip,
            color_jitter=preprocess.color_jitter,
        )

    def __call__(self, image: Image.Image, rng: np.random.Generator | None = None) -> torch.Tensor:
        """The model input for one RGB image; `rng` drives augmentation (a fresh generator
        when None). Without `augment` the result does not depend on `rng`."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        image = self._denoise(image)
        if self.augment:
            rng = rng if rng is not None else np.random.default_rng()
            image = self._random_resized_crop(image, rng)
            # always draw, so toggling flip or jitter does not shift later random numbers
            flip = rng.random() < 0.5
            factors = rng.uniform(1 - self.color_jitter, 1 + self.color_jitter, size=3)
            if self.flip and flip:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            if self.color_jitter > 0:
                image = ImageEnhance.Brightness(image).enhance(float(factors[0]))
                image = ImageEnhance.Contrast(image).enhance(float(factors[1]))
                image = ImageEnhance.Color(image).enhance(float(factors[2]))
        else:
            image = self._centre_crop(image)
        return self._to_tensor(image)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (saved as preprocess.json in the run folder)."""
        data = asdict(self)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageTransform:
        """The transform `to_dict` saved; unknown keys are a ValueError."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown image transform setting(s): {', '.join(unknown)}")
        return cls(**data)

    # --- steps ---------------------------------------------------------------------------

    def _denoise(self, image: Image.Image) -> Image.Image:
        if self.denoise == "median":
            return image.filter(ImageFilter.MedianFilter(self.denoise_size))
        if self.denoise == "gaussian":
            return image.filter(ImageFilter.GaussianBlur(radius=self.denoise_size))
        return image

    def _centre_crop(self, image: Image.Image) -> Image.Image:
        """Resize the shorter side to round(size / crop_fraction), crop the centre square:
        done as one resample of the matching source box (no second rounding)."""
        width, height = image.size
        resized_short = round(self.size / self.crop_fraction)
        side = min(width, height) * self.size / resized_short  # crop side in source pixels
        left = (width - side) / 2
        top = (height - side) / 2
        return self._resize(image, (left, top, left + side, top + side))

    def _random_resized_crop(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        """A random box of area share [min_crop_scale, 1] and aspect ratio [3/4, 4/3],
        resized to size x size; after 10 misses, the largest centred box in that ratio."""
        width, height = image.size
        area = width * height
        for _ in range(_CROP_TRIES):
            target = area * rng.uniform(self.min_crop_scale, 1.0)
            ratio = math.exp(rng.uniform(*_LOG_RATIO))
            w = round(math.sqrt(target * ratio))
            h = round(math.sqrt(target / ratio))
            if 0 < w <= width and 0 < h <= height:
                top = int(rng.integers(0, height - h + 1))
                left = int(rng.integers(0, width - w + 1))
                return self._resize(image, (left, top, left + w, top + h))
        ratio = width / height
        if ratio < 3 / 4:
            w, h = width, round(width / (3 / 4))
        elif ratio > 4 / 3:
            w, h = round(height * (4 / 3)), height
        else:
            w, h = width, height
        left, top = (width - w) // 2, (height - h) // 2
        return self._resize(image, (left, top, left + w, top + h))

    def _resize(self, image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
        return image.resize(
            (self.size, self.size), Image.Resampling.BICUBIC, box=box, reducing_gap=None
        )

    def _to_tensor(self, image: Image.Image) -> torch.Tensor:
        pixels = np.asarray(image, dtype=np.float32)  # H, W, 3 in [0, 255]
        pixels = pixels * self._scale + self._offset
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


def _triple(values: Sequence[float], name: str) -> tuple[float, float, float]:
    values = tuple(float(v) for v in values)
    if len(values) != 3:
        raise ValueError(f"{name} needs 3 values (R, G, B), got {len(values)}")
    return values  # type: ignore[return-value]
