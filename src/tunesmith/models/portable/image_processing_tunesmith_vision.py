"""A tunesmith run's evaluation transform as a transformers image processor (copied into the
export folder; imports only numpy, Pillow and transformers): `AutoImageProcessor.from_pretrained(
folder, trust_remote_code=True)`.

Per image: RGB (palette, 16-bit and other modes converted, transparency on white, EXIF
orientation applied), optional denoising, then ONE bicubic resample of the centre square that
a resize of the shorter side to round(size / crop_fraction) followed by a size x size centre
crop would keep, then (pixel / 255 - mean) / std. The same arithmetic as tunesmith's
ImageTransform, so the pixels, and the predictions, are the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter, ImageOps
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature


class TunesmithVisionImageProcessor(BaseImageProcessor):
    model_input_names = ["pixel_values"]  # noqa: RUF012 (transformers' own convention)

    def __init__(
        self,
        size: int = 224,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        crop_fraction: float = 0.875,
        denoise: str = "none",
        denoise_size: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.size = int(size)
        self.image_mean = [float(v) for v in (image_mean or [0.485, 0.456, 0.406])]
        self.image_std = [float(v) for v in (image_std or [0.229, 0.224, 0.225])]
        self.crop_fraction = float(crop_fraction)
        self.denoise = denoise
        self.denoise_size = int(denoise_size)

    def __call__(
        self, images: Any, return_tensors: str | None = None, **kwargs: Any
    ) -> BatchFeature:
        return self.preprocess(images, return_tensors=return_tensors)

    def preprocess(
        self, images: Any, return_tensors: str | None = None, **kwargs: Any
    ) -> BatchFeature:
        """pixel_values (N, 3, size, size) for an image or a list of them: PIL images, file
        paths, or (H, W, 3) uint8 arrays."""
        if not isinstance(images, (list, tuple)):
            images = [images]
        pixels = np.stack([self.pixels(image) for image in images])
        return BatchFeature(data={"pixel_values": pixels}, tensor_type=return_tensors)

    def pixels(self, image: Any) -> np.ndarray:
        """One image as the model reads it: (3, size, size) float32."""
        image = self._centre_crop(self._denoised(_rgb(_opened(image))))
        std = np.asarray(self.image_std, dtype=np.float32)
        scale = (1.0 / (255.0 * std)).astype(np.float32)
        offset = (-np.asarray(self.image_mean, dtype=np.float32) / std).astype(np.float32)
        values = np.asarray(image, dtype=np.float32) * scale + offset
        return np.ascontiguousarray(values.transpose(2, 0, 1))

    def _denoised(self, image: Image.Image) -> Image.Image:
        if self.denoise == "median":
            return image.filter(ImageFilter.MedianFilter(self.denoise_size))
        if self.denoise == "gaussian":
            return image.filter(ImageFilter.GaussianBlur(radius=self.denoise_size))
        return image

    def _centre_crop(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        resized_short = round(self.size / self.crop_fraction)
        side = min(width, height) * self.size / resized_short
        left, top = (width - side) / 2, (height - side) / 2
        return image.resize(
            (self.size, self.size),
            Image.Resampling.BICUBIC,
            box=(left, top, left + side, top + side),
            reducing_gap=None,
        )


def _opened(image: Any) -> Image.Image:
    if isinstance(image, (str, Path)):
        with Image.open(image) as opened:
            opened.load()
            return ImageOps.exif_transpose(opened) or opened.copy()
    if isinstance(image, np.ndarray):
        return Image.fromarray(image)
    if isinstance(image, Image.Image):
        return ImageOps.exif_transpose(image) or image
    raise TypeError(f"expected a PIL image, a file path or an array, got {type(image).__name__}")


def _rgb(image: Image.Image) -> Image.Image:
    """RGB as tunesmith reads images: transparency composited on white, 16-bit and float
    grey scaled to 8 bits."""
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return _grey(np.asarray(image).astype(np.float32) / 257.0)
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float32))
        if values.size and values.max() <= 1.0:
            values = values * 255.0
        return _grey(values)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("L", "RGB") and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _grey(values: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8)).convert("RGB")
