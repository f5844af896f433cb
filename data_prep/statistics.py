"""The training set's mean pixel (Sec. 2.1) and RGB colour PCA (Sec. 3.1), accumulated per image.

Sec. 2.1: "The only pre-processing we do is subtracting the mean RGB value, computed on the
training set, from each pixel." The mean here is exact: integer channel sums over every pixel
of every training image, streamed. It is taken over the images rescaled to the smallest scale
S = min(SCALES), the scale of the first single-scale nets: rescaling preserves an image's mean
colour (area averaging and bicubic interpolation are both mean-preserving up to rounding), so
the mean barely depends on the scale, and the smallest one has the fewest pixels to add up.
Every pixel weighs the same, so an image counts in proportion to its area at that scale.

Sec. 3.1 augments with "random RGB colour shift" (Krizhevsky et al., 2012), which needs the
eigenvalues and eigenvectors of the 3x3 covariance of RGB pixel values. They come from a
seeded sample: `pixels_per_image` pixels of each image at the same scale, drawn with
replacement by a hash of (seed, the image's position in the input list, draw number)
(convert.sample_positions, SplitMix64), so the sample does not depend on worker scheduling or on the shuffle; an image with fewer
pixels than that gives all of them. Only the sample's sums are kept (constant memory). The
covariance is of pixels scaled to [0, 1], normalised by the sample size; eigenvalues are
sorted descending, and each eigenvector's largest component is made positive (the sign is
arbitrary: the colour shift's coefficients are symmetric around zero).
"""
from __future__ import annotations

import numpy as np

from .convert import Converted
from .stats import Pca, Stats


class StatsAccumulator:
    def __init__(self, seed: int):
        self.seed = seed
        self.num_images = 0
        self.num_pixels = 0
        self.channel_sums = [0, 0, 0]  # B, G, R: Python ints cannot overflow
        self.pca_sum = np.zeros(3)
        self.pca_outer = np.zeros((3, 3))
        self.pca_count = 0

    def add(self, converted: Converted) -> None:
        self.num_images += 1
        self.num_pixels += converted.num_pixels
        for c in range(3):
            self.channel_sums[c] += int(converted.channel_sums[c])
        self.pca_sum += converted.pca_sum
        self.pca_outer += converted.pca_outer
        self.pca_count += converted.pca_count

    def mean_bgr(self) -> tuple[float, float, float]:
        return tuple(s / self.num_pixels for s in self.channel_sums)

    def pca(self) -> Pca:
        eigenvalues, eigenvectors = covariance_eigen(self.pca_sum, self.pca_outer, self.pca_count)
        return Pca(eigenvalues=tuple(float(v) for v in eigenvalues),
                   eigenvectors_rgb=tuple(tuple(float(c) for c in row) for row in eigenvectors),
                   sample_pixels=self.pca_count, seed=self.seed)

    def result(self) -> Stats:
        if not self.num_pixels:
            raise ValueError("no images were added")
        return Stats(mean_bgr=self.mean_bgr(), pca=self.pca(), num_images=self.num_images,
                     num_pixels=self.num_pixels, measured=True)


def covariance_eigen(total: np.ndarray, outer: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues descending, eigenvectors as rows) of the covariance given by its sums."""
    mean = total / count
    covariance = outer / count - np.outer(mean, mean)
    eigenvalues, columns = np.linalg.eigh((covariance + covariance.T) / 2)
    order = np.argsort(eigenvalues)[::-1]
    rows = columns[:, order].T
    signs = np.where(rows[np.arange(3), np.abs(rows).argmax(axis=1)] < 0, -1.0, 1.0)
    # Rounding can make a zero eigenvalue (a gray-only data set) slightly negative.
    return np.maximum(eigenvalues[order], 0.0), rows * signs[:, None]


def mean_blobproto(mean_bgr, caffe_pb2) -> bytes:
    """A 1x3x1x1 BlobProto of the mean pixel, in BGR order, 0-255 scale.

    Images have many sizes, so a per-position HxW mean (what `compute_image_mean` writes) is
    not meaningful here; Caffe's DataTransformer takes the mean pixel as `mean_value`, which
    the generators read from stats.json. The legacy num/channels/height/width fields are set
    (as `compute_image_mean` does) so old tools and `caffe.io.blobproto_to_array` read it.
    """
    blob = caffe_pb2.BlobProto(num=1, channels=3, height=1, width=1)
    blob.data.extend(float(v) for v in mean_bgr)
    return blob.SerializeToString()
