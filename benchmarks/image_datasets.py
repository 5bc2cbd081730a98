"""Real image sets reachable offline, written as image folders (root/<label>/<n>.png).

- fashion: Fashion-MNIST (MIT, Zalando Research), 28x28 grey photos of 10 kinds of clothing,
  from Debian's package dataset-fashion-mnist (its .deb is fetched with `apt-get download`
  and unpacked here when the package is not installed; no root needed).
- digits: scikit-learn's 8x8 handwritten digits (BSD-3-Clause, UCI), 1,797 images.

    .venv/bin/python benchmarks/image_datasets.py fashion OUT_DIR [--per-class 100]
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle-boot",
)  # fmt: skip


def _fashion_files(cache: Path) -> Path:
    if (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        return FASHION_DIR
    unpacked = cache / "fashion-mnist-deb"
    folder = unpacked / "usr/share/datasets/fashion-mnist"
    if not folder.is_dir():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["apt-get", "download", "dataset-fashion-mnist"], cwd=tmp, check=True)
            deb = next(Path(tmp).glob("dataset-fashion-mnist_*.deb"))
            unpacked.mkdir(parents=True, exist_ok=True)
            subprocess.run(["dpkg", "-x", str(deb), str(unpacked)], check=True)
    return folder


def _idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path) as handle:
        return np.frombuffer(handle.read(), dtype=np.uint8, offset=offset)


def fashion_mnist(cache: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(images (N, 28, 28) uint8, labels (N,), class names) of the 60,000 training images."""
    folder = _fashion_files(cache)
    images = _idx(folder / "train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = _idx(folder / "train-labels-idx1-ubyte.gz", 8)
    return images, labels, FASHION_CLASSES


def digits() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images * (255 / 16)).round().astype(np.uint8)
    return images, data.target, tuple(str(d) for d in range(10))


def write_folder(
    images: np.ndarray,
    labels: np.ndarray,
    names: tuple[str, ...],
    out: Path,
    per_class: int | None,
    seed: int = 0,
) -> int:
    """Write up to `per_class` images of each class (seeded choice) as PNGs; returns count."""
    rng = np.random.default_rng(seed)
    written = 0
    for label, name in enumerate(names):
        rows = np.flatnonzero(labels == label)
        if per_class is not None and len(rows) > per_class:
            rows = np.sort(rng.choice(rows, per_class, replace=False))
        (out / name).mkdir(parents=True, exist_ok=True)
        for row in rows:
            Image.fromarray(images[row], mode="L").save(out / name / f"{row:05d}.png")
            written += 1
    return written


def build(name: str, out: Path, per_class: int | None, cache: Path) -> Path:
    images, labels, names = fashion_mnist(cache) if name == "fashion" else digits()
    if not out.is_dir() or not any(out.iterdir()):
        count = write_folder(images, labels, names, out, per_class)
        print(f"{count} images of {len(names)} classes written to {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=("fashion", "digits"))
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=None)
    args = parser.parse_args()
    build(args.name, args.out, args.per_class, Path(__file__).parent / "results" / "cache")


if __name__ == "__main__":
    main()
