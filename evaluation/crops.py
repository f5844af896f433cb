"""Multi-crop evaluation's crops (Sec. 3.2 and 4.3).

Sec. 4.3: "we use ... 50 crops per scale (5 x 5 regular grid with 2 flips)" of the
network's 224 x 224 input, "150 crops over 3 scales". The grid's first and last rows and
columns touch the image borders (the corners are crops), the positions in between are
evenly spaced and rounded to whole pixels.
"""
from __future__ import annotations

import numpy as np

from prototxt_gen.table import PAPER

CROP_SIZE = PAPER.crop  # the networks' 224 x 224 input (Sec. 2.1)
GRID = 5


def grid_offsets(length: int, crop: int = CROP_SIZE, grid: int = GRID) -> np.ndarray:
    """`grid` crop start offsets along a side of `length`: linspace(0, length - crop), rounded."""
    if length < crop:
        raise ValueError(f"a side of {length} pixels is smaller than the {crop}-pixel crop")
    # floor(x + 0.5) rounds half up; numpy's round would send half to even.
    return np.floor(np.linspace(0, length - crop, grid) + 0.5).astype(int)


def crop_positions(height: int, width: int, crop: int = CROP_SIZE, grid: int = GRID) -> list[tuple[int, int]]:
    """(y, x) top-left corners of the grid x grid crops, row-major."""
    return [(int(y), int(x)) for y in grid_offsets(height, crop, grid) for x in grid_offsets(width, crop, grid)]


def multi_crops(image: np.ndarray, crop: int = CROP_SIZE, grid: int = GRID) -> np.ndarray:
    """(2 * grid^2, crop, crop, C): the grid's crops, then each crop's horizontal mirror.

    The mirror of the crop at x is the crop at width - crop - x of the mirrored image, so
    this is also the grid of the flipped image.
    """
    height, width = image.shape[:2]
    crops = np.stack([image[y:y + crop, x:x + crop] for y, x in crop_positions(height, width, crop, grid)])
    return np.concatenate([crops, crops[:, :, ::-1]])
