"""Image classification as a `TrainTask`: images decoded and transformed per batch (training
augmentation drawn from one seeded generator), metrics streamed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from tunesmith.data.image_preprocess import ImageTransform
from tunesmith.data.images import ImageSplits, open_image
from tunesmith.progress import track
from tunesmith.tasks.classification import ClassifierTask
from tunesmith.train.batching import sorted_batches
from tunesmith.train.device import autocast
from tunesmith.train.task import Batch


class ImageClassificationTask(ClassifierTask):
    def __init__(
        self,
        splits: ImageSplits,
        train_transform: ImageTransform,
        eval_transform: ImageTransform,
        device: torch.device,
        dtype: torch.dtype | None,
        *,
        eval_batch_size: int = 64,
        label_smoothing: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.splits = splits
        self.train_transform = train_transform
        self.eval_transform = eval_transform
        self.device = device
        self.dtype = dtype
        self.eval_batch_size = eval_batch_size
        self.label_smoothing = label_smoothing
        self.rng = np.random.default_rng(seed)

    def lengths(self, split: str) -> list[int]:
        return [1] * len(self.splits.split(split))  # every image costs the same

    def batch(self, split: str, indices: Sequence[int]) -> Batch:
        examples = self.splits.split(split)
        transform = self.train_transform if split == "train" else self.eval_transform
        pixels = self.pixels([examples.paths[i] for i in indices], transform)
        targets = torch.tensor([examples.labels[i] for i in indices])
        return Batch(
            inputs={"pixel_values": pixels.to(self.device)},
            targets=targets.to(self.device),
            items=len(indices),
            tokens=len(indices),
        )

    def pixels(self, paths: Sequence[str], transform: ImageTransform | None = None) -> torch.Tensor:
        """(N, 3, size, size) normalised pixels; augmented when `transform` is the training one."""
        transform = transform or self.eval_transform
        rng = self.rng if transform.augment else None
        return torch.stack([transform(open_image(path), rng) for path in paths])

    def split_labels(self, split: str) -> tuple[Sequence[int], list[str]]:
        return self.splits.split(split).labels, self.splits.label_names

    @torch.inference_mode()
    def predict_proba(self, model: nn.Module, paths: Sequence[str]) -> np.ndarray:
        """(N, num_labels) class probabilities, in the order of `paths`."""
        model.eval()
        return self._map_batches(
            paths, lambda pixels: torch.softmax(model(pixel_values=pixels).logits.float(), -1)
        )

    @torch.inference_mode()
    def features(self, model: nn.Module, split: str) -> np.ndarray:
        """Pooled backbone features of a split (evaluation transform), for the frozen `base`."""
        model.eval()
        return self._map_batches(self.splits.split(split).paths, model.features)

    def downscaled_pixels(self, split: str, side: int = 32) -> np.ndarray:
        """Each image at side x side (RGB, normalised), flattened: the pixel `baseline`'s
        features."""
        small = ImageTransform.from_dict({**self.eval_transform.to_dict(), "size": side})
        paths = self.splits.split(split).paths
        return np.stack([small(open_image(path)).flatten().numpy() for path in paths])

    def _map_batches(
        self, paths: Sequence[str], forward: Callable[[torch.Tensor], torch.Tensor]
    ) -> np.ndarray:
        out: np.ndarray | None = None
        batches = sorted_batches([1] * len(paths), self.eval_batch_size)
        for chunk in track(batches, "Running the model over images", size=len, unit="images"):
            pixels = self.pixels([paths[i] for i in chunk]).to(self.device)
            with autocast(self.device, self.dtype):
                result = forward(pixels).float().cpu().numpy()
            if out is None:
                out = np.zeros((len(paths), *result.shape[1:]), dtype=np.float32)
            out[chunk] = result
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)
