"""Test images: the list, isotropic rescaling, mean subtraction (Sec. 2.1 and 3.2).

Sec. 3.2: "it is isotropically rescaled to a pre-defined smallest image side, denoted as
Q" (with the training data's rule: data_prep.convert). Sec. 2.1: "The only pre-processing we do is subtracting the mean RGB value, computed on
the training set, from each pixel."

Images are listed as in Caffe's `convert_imageset`: one `relative/path label` per line,
relative to an image root. OpenCV decodes them in BGR order, the order of Caffe's mean
pixel and of the authors' released models.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


class ImageListError(ValueError):
    pass


@dataclass(frozen=True)
class ListedImage:
    path: str  # relative to the image root, as written in the list
    label: int


def read_image_list(list_path: str | Path, limit: int | None = None) -> list[ListedImage]:
    """Parse a Caffe list file; a malformed line is an error that names the line."""
    list_path = Path(list_path)
    try:
        lines = list_path.read_text().splitlines()
    except FileNotFoundError:
        raise ImageListError(f"image list not found: {list_path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageListError(f"{list_path}: cannot read the image list ({exc})") from None
    images = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        # The label is the last word; a path may contain spaces (as convert_imageset allows).
        parts = line.strip().rsplit(None, 1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or int(parts[1]) < 0:
            raise ImageListError(
                f"{list_path}:{number}: expected 'relative/path label' with an integer label >= 0,"
                f" got {line.strip()!r}")
        images.append(ListedImage(parts[0], int(parts[1])))
        if limit is not None and len(images) >= limit:
            break
    if not images:
        raise ImageListError(f"{list_path}: the image list is empty")
    return images


def load_rescaled(path: str | Path, side: int) -> np.ndarray | None:
    """BGR uint8 (H, W, 3) with smallest side `side`, or None when the file is missing or not
    a decodable image.

    Decoded and rescaled by data prep's own functions (data_prep.convert: DCT-reduced JPEG
    decoding of large images, transparency over white, 16-bit to 8-bit; area interpolation
    down, bicubic up, the other side rounded half up), so a test image at Q is made exactly
    as a training image at S = Q was.
    """
    from data_prep.convert import ConvertOptions, decode, read_image_file, rescale
    from data_prep.imagefile import BadImage, read_header

    try:
        data = read_image_file(str(path))
        image, _ = decode(data, read_header(data), side, ConvertOptions(scales=(side,)))
    except BadImage:
        return None
    return rescale(image, side)


def to_net_input(images: Sequence[np.ndarray] | np.ndarray, mean_bgr: Sequence[float]) -> np.ndarray:
    """Equal-sized BGR uint8 (H, W, 3) images -> float32 (N, 3, H, W) minus the mean pixel."""
    batch = np.asarray(images, dtype=np.float32)
    if batch.ndim == 3:
        batch = batch[None]
    batch -= np.asarray(mean_bgr, dtype=np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
