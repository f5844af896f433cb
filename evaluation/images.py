"""Test images: the list, isotropic rescaling, mean subtraction (Sec. 2.1 and 3.2).

Sec. 3.2: "it is isotropically rescaled to a pre-defined smallest image side, denoted as
Q". Sec. 2.1: "The only pre-processing we do is subtracting the mean RGB value, computed on
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


def load_image(path: str | Path) -> np.ndarray | None:
    """BGR uint8 (H, W, 3), or None when the file is missing or not a decodable image."""
    import cv2

    path = Path(path)
    if not path.is_file():
        return None
    # imdecode of the bytes, not imread: imread cannot report why it failed and prints noise.
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) == 0:
        return None
    return image


def rescaled_size(height: int, width: int, side: int) -> tuple[int, int]:
    """(h, w) with the smallest side equal to `side` and the aspect ratio kept (rounded)."""
    # floor(x + 0.5): round half up, as C++'s static_cast<int>(x + 0.5) does.
    if height <= width:
        return side, int(np.floor(width * side / height + 0.5))
    return int(np.floor(height * side / width + 0.5)), side


def rescale_smallest_side(image: np.ndarray, side: int) -> np.ndarray:
    """Rescale isotropically so the smallest side is `side` (Sec. 3.1 S, Sec. 3.2 Q).

    Shrinking uses area averaging (no aliasing), enlarging bicubic interpolation: the rule
    the training data uses too, so train and test images are resampled alike.
    """
    import cv2

    height, width = image.shape[:2]
    new_h, new_w = rescaled_size(height, width, side)
    if (new_h, new_w) == (height, width):
        return image
    interpolation = cv2.INTER_AREA if side < min(height, width) else cv2.INTER_CUBIC
    return cv2.resize(image, (new_w, new_h), interpolation=interpolation)


def to_net_input(images: Sequence[np.ndarray] | np.ndarray, mean_bgr: Sequence[float]) -> np.ndarray:
    """Equal-sized BGR uint8 (H, W, 3) images -> float32 (N, 3, H, W) minus the mean pixel."""
    batch = np.asarray(images, dtype=np.float32)
    if batch.ndim == 3:
        batch = batch[None]
    batch -= np.asarray(mean_bgr, dtype=np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
