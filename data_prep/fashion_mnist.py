"""vgg-fashion-mnist: Fashion-MNIST's IDX files as an image root plus list files.

A real labelled image set that Debian ships (`apt-get install dataset-fashion-mnist` puts the
IDX files in /usr/share/datasets/fashion-mnist/), so the demo and the tests of the Sec. 3.1
data pipeline run on real images. The files from any other path work too (`--source`),
gzipped or not. Output, per split (train, test):
    OUT/<split>/<label>_<class>/<index>.png   28x28 grayscale PNGs
    OUT/<split>.txt                           Caffe list: `<label>_<class>/<index>.png <label>`
    OUT/classes.txt                           `<label>_<class> <name>` per line, in label order
Folder names sort in label order, so the trees also work as class-folder inputs of vgg-data.
Each split is written under a temporary name and renamed when complete.
"""
from __future__ import annotations

import argparse
import gzip
import os
import sys

import cv2
import numpy as np

from . import atomic

PROG = "vgg-fashion-mnist"
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SPLITS = {"train": "train", "test": "t10k"}  # our name: the IDX files' prefix
_IDX_UBYTE = 0x08


class IdxError(RuntimeError):
    pass


def folder_names() -> list[str]:
    return [f"{label}_{name.lower().replace('-', '').replace('/', '_').replace(' ', '_')}"
            for label, name in enumerate(CLASSES)]


def find_idx(source: str, stem: str) -> str:
    for name in (stem + ".gz", stem):
        path = os.path.join(source, name)
        if os.path.isfile(path):
            return path
    hint = (" Install them with `apt-get install dataset-fashion-mnist`, or pass --source DIR."
            if os.path.abspath(source) == DEBIAN_DIR else "")
    raise IdxError(f"{stem}[.gz] not found in {source}.{hint}")


def read_idx(path: str, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with `ndim` dimensions (LeCun's MNIST format)."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise IdxError(f"cannot read {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IdxError(f"{path}: not an IDX file")
    if raw[2] != _IDX_UBYTE or raw[3] != ndim:
        raise IdxError(f"{path}: IDX type 0x{raw[2]:02x} with {raw[3]} dimensions,"
                           f" expected unsigned bytes with {ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise IdxError(f"{path}: {len(raw) - header} data bytes for dimensions {dims} ({size} expected)")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def load_split(source: str, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    prefix = SPLITS[split]
    images_path = find_idx(source, f"{prefix}-images-idx3-ubyte")
    labels_path = find_idx(source, f"{prefix}-labels-idx1-ubyte")
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise IdxError(f"{images_path} has {len(images)} images but {labels_path} {len(labels)} labels")
    if labels.size and labels.max() >= len(CLASSES):
        raise IdxError(f"{labels_path}: label {labels.max()} outside 0..{len(CLASSES) - 1}")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels


def write_split(out: str, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    folders = folder_names()
    final = os.path.join(out, split)
    tmp = atomic.temp_path(final)
    lines = []
    try:
        for folder in folders:
            os.makedirs(os.path.join(tmp, folder))
        for index, (image, label) in enumerate(zip(images, labels)):
            relative = f"{folders[label]}/{index:05d}.png"
            ok, png = cv2.imencode(".png", image)
            if not ok:
                raise IdxError("OpenCV cannot encode PNG")
            with open(os.path.join(tmp, relative), "wb") as f:
                f.write(png.tobytes())
            lines.append(f"{relative} {label}\n")
        atomic.publish_dir(tmp, final)
    except BaseException:
        atomic.remove(tmp)
        raise
    atomic.write_file(os.path.join(out, f"{split}.txt"), "".join(lines).encode())


def import_fashion_mnist(source: str, out: str, limit: int | None = None) -> dict[str, int]:
    data = {split: load_split(source, split, limit) for split in SPLITS}  # validate all first
    os.makedirs(out, exist_ok=True)
    names = list(SPLITS) + [f"{s}.txt" for s in SPLITS] + ["classes.txt"]
    atomic.remove_leftovers(out, names)
    atomic.write_file(os.path.join(out, "classes.txt"),
                      "".join(f"{folder} {name}\n" for folder, name in zip(folder_names(), CLASSES)).encode())
    for split, (images, labels) in data.items():
        write_split(out, split, images, labels)
    return {split: len(labels) for split, (_, labels) in data.items()}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Import Fashion-MNIST's IDX files as PNG image roots plus Caffe list files:"
                    " OUT/train/, OUT/train.txt, OUT/test/, OUT/test.txt, OUT/classes.txt.",
        epilog=f"The IDX files: `apt-get install dataset-fashion-mnist` puts them in {DEBIAN_DIR}.")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--source", default=DEBIAN_DIR,
                   help="directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (default: %(default)s)")
    p.add_argument("--limit", type=int, metavar="N", help="import only the first N images of each split")
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.limit is not None and args.limit <= 0:
        p.error(f"--limit must be positive: {args.limit}")
    try:
        counts = import_fashion_mnist(args.source, args.out, args.limit)
    except (IdxError, atomic.OutputBusy) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: error: writing {args.out} failed: {exc.strerror or exc}"
              f"{f' ({exc.filename})' if exc.filename else ''}", file=sys.stderr)
        return 1
    print(f"Fashion-MNIST: {counts['train']} train and {counts['test']} test images in {args.out}")
    for split in SPLITS:
        print(f"  {split}: ROOT={os.path.join(args.out, split)} LIST={os.path.join(args.out, split + '.txt')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
