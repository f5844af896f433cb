"""Dense and multi-crop evaluation of an image list at one test scale Q (Sec. 3.2, 4.3).

Dense (Sec. 3.2): the image, rescaled to smallest side Q, goes whole through the
fully-convolutional net (fc6 a 7x7 convolution, fc7 and fc8 1x1). Its `fc8` blob is a
class score map, one 1000-vector per 224x224 window at stride 32 (the five pools). Where
soft-max sits, and why:

    posterior(image) = mean( softmax(mean_{i,j} fc8[:, i, j]),          the image
                             softmax(mean_{i,j} fc8_flipped[:, i, j]) ) its mirror image

The score map is averaged spatially *before* soft-max, because the paper averages the map
"to obtain a fixed-size vector of class scores for the image" (sum-pooling the scores, as a
global average pooling layer would inside the net, which is also what the `caffe test`
dense net of `caffe_test_net` does). Soft-max then turns that class-score vector into the
image's posterior, and everything averaged after that point, the mirror image, test scales,
multi-crop & dense, models, is averaged as soft-max posteriors, as Sec. 3.2 and 4.2-4.4 say.

Multi-crop (Sec. 4.3): the 5x5 grid of 224 crops and their mirror images (50 per scale)
through the FC deploy net; its `prob` posteriors are averaged.

Images are rescaled so the smallest side is max(Q, 224): the paper rescales to Q first, and
a side below the 224 window would leave no crop and an empty score map.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .crops import CROP_SIZE, multi_crops
from .images import ListedImage, load_rescaled, to_net_input
from .posteriors import DENSE, MULTICROP, softmax
from .progress import Progress

SCORE_BLOB = "fc8"
PROB_BLOB = "prob"
# Images waiting for a batch of their size: bounded, so a list of many sizes never holds
# more than this many rescaled images in memory.
MAX_PENDING_INPUTS = 64


class EvaluationError(ValueError):
    pass


@dataclass(frozen=True)
class Scored:
    """What one protocol at one scale produced: posteriors of the images it could read."""
    images: tuple[str, ...]
    labels: np.ndarray
    probs: np.ndarray
    skipped: tuple[str, ...]
    seconds: float


def rescaled_side(scale: int, crop: int = CROP_SIZE) -> int:
    """The smallest side an image is rescaled to for test scale Q."""
    return max(scale, crop)


def forward(net, batch: np.ndarray, end: str) -> np.ndarray:
    """Run a (N, 3, H, W) batch, reshaping the net to it first; the blob `end` (a view)."""
    data = net.blobs["data"]
    if tuple(data.data.shape) != batch.shape:
        data.reshape(*batch.shape)
        net.reshape()
    data.data[...] = batch
    net.forward(end=end)
    return net.blobs[end].data


def dense_posteriors(net, batch: np.ndarray) -> np.ndarray:
    """(N, classes) posteriors: fc8's score map averaged spatially, then soft-max."""
    scores = forward(net, batch, SCORE_BLOB)
    if scores.ndim != 4:
        raise EvaluationError(f"the dense net's {SCORE_BLOB} is {scores.shape}, not an N x C x h x w score map")
    return softmax(scores.mean(axis=(2, 3)), axis=1)


def crop_posteriors(net, batch: np.ndarray) -> np.ndarray:
    """(N, classes): the net's soft-max `prob` for a batch of 224 crops (FC net, or the dense
    net whose score map is 1x1 on a crop)."""
    probs = forward(net, batch, PROB_BLOB)
    if probs.ndim == 4 and probs.shape[2:] != (1, 1):
        raise EvaluationError(f"{PROB_BLOB} is {probs.shape} on {batch.shape[-2:]} crops, expected one posterior each")
    return probs.reshape(len(batch), -1).astype(np.float64)


class _Accumulator:
    """Sums each image's posteriors until all of its inputs are scored."""

    def __init__(self, listing: Sequence[ListedImage], inputs_per_image: int, progress: Progress):
        self.listing = listing
        self.inputs_per_image = inputs_per_image
        self.progress = progress
        self.sums: dict[int, np.ndarray] = {}
        self.remaining: dict[int, int] = {}
        self.skipped: list[int] = []

    def add(self, indices: Sequence[int], posteriors: np.ndarray) -> None:
        finished = 0
        for index, posterior in zip(indices, posteriors):
            if index in self.sums:
                self.sums[index] += posterior
            else:
                self.sums[index] = posterior.astype(np.float64, copy=True)
                self.remaining[index] = self.inputs_per_image
            self.remaining[index] -= 1
            finished += self.remaining[index] == 0
        if finished:
            self.progress.advance(finished)

    def skip(self, index: int) -> None:
        self.skipped.append(index)
        self.progress.advance(1, note=f"skipped {len(self.skipped)} unreadable")

    def result(self, seconds: float) -> Scored:
        order = sorted(self.sums)
        if any(self.remaining[i] for i in order):
            raise AssertionError("an image was not scored completely")
        probs = np.stack([self.sums[i] / self.inputs_per_image for i in order]) if order else \
            np.zeros((0, 0), dtype=np.float64)
        return Scored(images=tuple(self.listing[i].path for i in order),
                      labels=np.array([self.listing[i].label for i in order], dtype=np.int64),
                      probs=probs.astype(np.float32),
                      skipped=tuple(self.listing[i].path for i in sorted(self.skipped)),
                      seconds=seconds)


def _rescaled_images(listing: Sequence[ListedImage], root: Path, side: int, acc: _Accumulator):
    """(index, image rescaled to smallest side `side`) of each readable image; the others skipped."""
    for index, item in enumerate(listing):
        image = load_rescaled(root / item.path, side)
        if image is None:
            acc.skip(index)
            continue
        yield index, image


def evaluate_dense(net, listing: Sequence[ListedImage], root: str | Path, scale: int,
                   mean_bgr: Sequence[float], *, flip: bool = True, batch_size: int = 10,
                   crop: int = CROP_SIZE, show_progress: bool = True) -> Scored:
    """Dense evaluation at test scale Q = `scale` through a fully-convolutional net.

    Images of equal rescaled size share forward passes; a pass holds at most the pixels of
    `batch_size` 224x224 crops (at least one image), so large Q means smaller batches.
    """
    root = Path(root)
    progress = Progress(len(listing), f"dense Q={scale}", enabled=show_progress)
    acc = _Accumulator(listing, 2 if flip else 1, progress)
    pending: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = defaultdict(list)
    pixels = batch_size * crop * crop

    def capacity(shape):
        return max(1, pixels // (shape[0] * shape[1]))

    def run(shape, count):
        entries, pending[shape] = pending[shape][:count], pending[shape][count:]
        if not pending[shape]:
            del pending[shape]
        batch = to_net_input([image for _, image in entries], mean_bgr)
        acc.add([index for index, _ in entries], dense_posteriors(net, batch))

    start = time.monotonic()
    for index, image in _rescaled_images(listing, root, rescaled_side(scale, crop), acc):
        shape = image.shape[:2]
        pending[shape].append((index, image))
        if flip:
            pending[shape].append((index, image[:, ::-1]))
        while len(pending.get(shape, ())) >= capacity(shape):
            run(shape, capacity(shape))
        if sum(len(v) for v in pending.values()) > MAX_PENDING_INPUTS:
            largest = max(pending, key=lambda s: len(pending[s]))
            while largest in pending:
                run(largest, capacity(largest))
    for shape in list(pending):
        while shape in pending:
            run(shape, capacity(shape))
    progress.close()
    return acc.result(time.monotonic() - start)


def evaluate_multicrop(net, listing: Sequence[ListedImage], root: str | Path, scale: int,
                       mean_bgr: Sequence[float], *, batch_size: int = 10, crop: int = CROP_SIZE,
                       show_progress: bool = True) -> Scored:
    """Multi-crop evaluation at test scale Q = `scale`: 50 crops per image, `batch_size` per pass."""
    root = Path(root)
    progress = Progress(len(listing), f"multi-crop Q={scale}", enabled=show_progress)
    crops_per_image = len(multi_crops(np.zeros((crop, crop, 3), np.uint8), crop))
    acc = _Accumulator(listing, crops_per_image, progress)
    start = time.monotonic()
    for index, image in _rescaled_images(listing, root, rescaled_side(scale, crop), acc):
        crops = multi_crops(image, crop)
        for first in range(0, len(crops), batch_size):
            chunk = crops[first:first + batch_size]
            acc.add([index] * len(chunk), crop_posteriors(net, to_net_input(chunk, mean_bgr)))
    progress.close()
    return acc.result(time.monotonic() - start)


PROTOCOL_FUNCTIONS: dict[str, Callable[..., Scored]] = {DENSE: evaluate_dense, MULTICROP: evaluate_multicrop}
