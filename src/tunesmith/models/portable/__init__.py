"""Files copied into an exported folder so that it loads without tunesmith: each imports only
the standard library, torch, numpy, Pillow and transformers (janome for Japanese stop words).

- `configuration_tunesmith_vision.py`, `modeling_tunesmith_vision.py`: tunesmith's image
  classifier (EfficientNet-Lite0 or a transformers backbone, pooled, then a linear head) as a
  transformers custom model, so `AutoModelForImageClassification.from_pretrained(folder,
  trust_remote_code=True)` loads an image export.
- `image_processing_tunesmith_vision.py`: the run's evaluation transform (denoise, one
  bicubic resample of the centre box, normalise) as an image processor for
  `AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)`.
- `preprocess.py`: a text classifier's stop-word removal (its word lists in preprocess.json),
  for what cannot live in the tokenizer's normalizer.
"""

from __future__ import annotations

from pathlib import Path

VISION_FILES = (
    "configuration_tunesmith_vision.py",
    "modeling_tunesmith_vision.py",
    "image_processing_tunesmith_vision.py",
)
"""What an image export carries beside its weights (custom code, trust_remote_code)."""
TEXT_PREPROCESS_FILE = "preprocess.py"


def source(name: str) -> Path:
    """The path of one of this package's portable files."""
    return Path(__file__).with_name(name)
