"""Write Fashion-MNIST as an image folder (one sub-folder of PNG files per class), the
layout `data.source: {type: images}` reads: a real example input for
`jobs/fashion_mnist_images.yaml`.

    .venv/bin/python scripts/image_folder.py                 # 500 images per class → data/fashion_mnist_png
    .venv/bin/python scripts/image_folder.py --per-class 0   # all 70,000

It reads the IDX files from /usr/share/datasets/fashion-mnist (`make setup` installs them)
and takes the first N images of each class in file order, so the folder is the same on
every machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from raydl.data.sources import FASHION_MNIST_DIR, read_idx

CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def write_folder(src: Path, out: Path, per_class: int) -> dict[str, int]:
    images = np.concatenate([read_idx(src / f"{p}-images-idx3-ubyte.gz") for p in ("train", "t10k")])
    labels = np.concatenate([read_idx(src / f"{p}-labels-idx1-ubyte.gz") for p in ("train", "t10k")])
    counts = {}
    for c, name in enumerate(CLASSES):
        idx = np.flatnonzero(labels == c)
        idx = idx[:per_class] if per_class else idx
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in idx:
            Image.fromarray(images[i]).save(folder / f"{i:05d}.png")
        counts[name] = len(idx)
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=Path(FASHION_MNIST_DIR))
    ap.add_argument("--out", type=Path, default=Path("data/fashion_mnist_png"))
    ap.add_argument("--per-class", type=int, default=500, help="images per class (0: all)")
    args = ap.parse_args()
    counts = write_folder(args.src, args.out, args.per_class)
    print(f"{sum(counts.values()):,} PNG images in {args.out}/ ({len(counts)} class folders)")


if __name__ == "__main__":
    main()
