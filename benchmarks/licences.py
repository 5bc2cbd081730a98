"""Licence texts for domain adaptation (continued pre-training on raw text), from the npm
package spdx-license-list (CC0-1.0), fetched from the npm registry with `npm pack`.

    .venv/bin/python benchmarks/licences.py [--count 60] [--output examples/data/licences]

writes one .txt file per licence: the excerpt committed under examples/data/licences/ was
made with the defaults (licences of 1,500-5,000 characters, every third one by SPDX id).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "spdx-license-list@6.12.0"


def licence_texts(low: int = 1500, high: int = 5000) -> dict[str, str]:
    """SPDX id -> full licence text, for licences whose text length is within [low, high)."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=folder, check=True)
        archive = next(Path(folder).glob("spdx-license-list-*.tgz"))
        texts = {}
        with tarfile.open(archive) as tar:
            for member in sorted(tar.getmembers(), key=lambda m: m.name):
                if not member.name.startswith("package/licenses/") or not member.isfile():
                    continue
                record = json.load(tar.extractfile(member))
                text = record.get("licenseText", "").strip()
                if low <= len(text) < high:
                    texts[Path(member.name).stem] = text
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--output", default="examples/data/licences")
    args = parser.parse_args()
    texts = licence_texts()
    chosen = sorted(texts)[::3][: args.count]
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    for spdx_id in chosen:
        (output / f"{spdx_id}.txt").write_text(texts[spdx_id] + "\n", encoding="utf-8")
    print(f"{len(chosen)} licence texts written to {output}")


if __name__ == "__main__":
    main()
