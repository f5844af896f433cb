"""One training image to its records at every scale S (Sec. 3.1) and its share of the statistics.

Sec. 3.1: "let S be the smallest side of an isotropically-rescaled training image, from which
the ConvNet input is cropped". Each image is decoded once and rescaled so that its smallest
side is exactly S for every S asked for; the other side is rounded half up, the rule of the
patched Caffe DataTransformer (`RescaledShape`), and the interpolation is the one it uses too:
area averaging when shrinking (no aliasing), bicubic when enlarging. The area shrink goes
through area_resize.py: OpenCV's INTER_AREA pixels bit for bit, in about a third of the time.

Decoding: OpenCV, `IMREAD_COLOR`, i.e. Caffe's BGR order with EXIF orientation applied.
Optionally (`reduced_decode`, off by default) a JPEG whose smallest side is at least 2, 4 or 8
times the largest S is decoded straight to 1/2, 1/4 or 1/8 of its size by libjpeg's DCT
scaling and then rescaled to each S. That is much faster on large photographs but it is a
different filter from area averaging: on busy images the result is 27-35 dB PSNR away from
a full decode + area rescale (50+ dB on smooth ones), as far as JPEG's own error, so the
default decodes at full size and the records match a direct rescale of the source.
Images with transparency are composited over white, as a viewer shows them (`IMREAD_COLOR`
would expose whatever colour the transparent pixels hold); 16-bit images are rounded to
8 bits (x / 257), not truncated.

Encoding: JPEG at the configured quality; a plain baseline JPEG whose smallest side already
equals S is stored byte for byte (Caffe decodes it to the same pixels we would have).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from . import area_resize
from .imagefile import CORRUPT, TOO_MANY_PIXELS, BadImage, ImageHeader, read_header

MISSING_FILE = "missing-file"
NOT_A_FILE = "not-a-file"
UNREADABLE = "unreadable"

# Refuse larger images before decoding them (a decompression bomb can be a few KB on disk).
DEFAULT_MAX_PIXELS = 100_000_000
# Sec. 3.1: the ConvNet input is a 224x224 crop; images smaller than that are counted.
DEFAULT_CROP_SIZE = 224
DEFAULT_JPEG_QUALITY = 95
# Pixels per image, at the smallest scale, that go into the colour PCA (see statistics.py).
DEFAULT_PCA_PIXELS_PER_IMAGE = 100

_REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                  8: cv2.IMREAD_REDUCED_COLOR_8}


@dataclass(frozen=True)
class ConvertOptions:
    scales: tuple[int, ...]                   # ascending
    quality: int = DEFAULT_JPEG_QUALITY
    max_pixels: int = DEFAULT_MAX_PIXELS
    crop_size: int = DEFAULT_CROP_SIZE
    reduced_decode: bool = False
    pca_pixels_per_image: int = DEFAULT_PCA_PIXELS_PER_IMAGE
    seed: int = 0

    def __post_init__(self):
        if not self.scales or list(self.scales) != sorted(set(self.scales)) or self.scales[0] <= 0:
            raise ValueError(f"scales must be distinct positive sizes in ascending order: {self.scales}")


@dataclass
class Converted:
    """One image's records (per scale, in `scales` order) and its share of the statistics."""
    records: list[tuple[int, int, bytes]]     # (height, width, JPEG bytes)
    channel_sums: np.ndarray                  # int64 [B, G, R] over all pixels at scales[0]
    num_pixels: int
    pca_sum: np.ndarray                       # float64 [R, G, B] of the sample, [0, 1] scale
    pca_outer: np.ndarray                     # float64 3x3 sum of x x^T over the sample
    pca_count: int
    notes: list[str] = field(default_factory=list)


def rescaled_shape(height: int, width: int, side: int) -> tuple[int, int]:
    """(h, w) with the smallest side `side`, the other rounded half up (Caffe's RescaledShape)."""
    if height <= width:
        return side, int(math.floor(width * side / height + 0.5))
    return int(math.floor(height * side / width + 0.5)), side


def rescale(image: np.ndarray, side: int, original: tuple[int, int] | None = None) -> np.ndarray:
    """The image with smallest side `side`. `original`: the (h, w) it had before a reduced
    decode; the new shape comes from it, so it is the same as without the reduction."""
    height, width = image.shape[:2]
    new_h, new_w = rescaled_shape(*(original or (height, width)), side)
    if (new_h, new_w) == (height, width):
        return image
    # Exactly the patched DataTransformer's interpolation (RescaledShape + cv::resize), so a
    # stored S and a jittered S are the same image: area when shrinking, bicubic when enlarging.
    shrink = new_h < height or new_w < width
    if shrink:
        # The same pixels as cv2.INTER_AREA, computed faster (area_resize.c); None where it
        # does not apply.
        fast = area_resize.shrink(image, new_w, new_h)
        if fast is not None:
            return fast
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def full_shape(header: ImageHeader, image: np.ndarray, factor: int) -> tuple[int, int]:
    """The image's (h, w) at full size, upright: the header's, swapped if EXIF rotated it."""
    if factor == 1:
        return image.shape[:2]
    stored = (header.height, header.width)
    reduced = tuple(math.ceil(n / factor) for n in stored)
    return stored if image.shape[:2] == reduced else stored[::-1]


def reduction_factor(header: ImageHeader, largest_scale: int) -> int:
    """The largest libjpeg DCT scaling 1/r that keeps the smallest side >= largest_scale."""
    if header.format != "jpeg":
        return 1
    for r in (8, 4, 2):
        if math.ceil(header.smallest_side / r) >= largest_scale:
            return r
    return 1


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """An IMREAD_UNCHANGED result (gray, BGR, BGRA; 8 or 16 bit) as 8-bit BGR, alpha over white."""
    if image.dtype == np.uint16:
        top = 65535.0
    elif image.dtype == np.uint8:
        top = 255.0
    else:
        raise BadImage(CORRUPT, f"unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels in (2, 4):
        colour = image[:, :, :channels - 1].astype(np.float32)
        alpha = image[:, :, channels - 1:].astype(np.float32) / top
        image = colour * alpha + top * (1.0 - alpha)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    return np.clip(np.rint(image.astype(np.float32) * (255.0 / top)), 0, 255).astype(np.uint8)


def decode(data: bytes, header: ImageHeader, largest_scale: int, options: ConvertOptions) -> tuple[np.ndarray, int]:
    """(BGR uint8 image, reduction factor used); BadImage when OpenCV cannot decode it."""
    if header.pixels > options.max_pixels:
        raise BadImage(TOO_MANY_PIXELS, f"{header.width}x{header.height} = {header.pixels} pixels,"
                                        f" above the limit of {options.max_pixels} (--max-pixels)")
    buffer = np.frombuffer(data, np.uint8)
    factor = 1
    if header.has_alpha or header.bit_depth > 8:
        image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
        if image is not None:
            image = to_bgr8(image)
    else:
        if options.reduced_decode:
            factor = reduction_factor(header, largest_scale)
        image = cv2.imdecode(buffer, _REDUCED_FLAGS.get(factor, cv2.IMREAD_COLOR))
    if image is None or image.size == 0:
        raise BadImage(CORRUPT, f"OpenCV cannot decode this {header.format.upper()} file")
    return image, factor


def _notes(header: ImageHeader) -> list[str]:
    notes = []
    if header.format == "jpeg" and header.channels == 4:
        notes.append("CMYK converted to BGR")
    elif header.channels <= 2:
        notes.append("grayscale converted to BGR")
    if header.has_alpha:
        notes.append("transparency composited over white")
    if header.bit_depth > 8:
        notes.append("16-bit rounded to 8-bit")
    if header.orientation not in (None, 1):
        notes.append("EXIF orientation applied")
    return notes


def convert_image(data: bytes, options: ConvertOptions, sample_index: int = 0) -> Converted:
    """The records of one encoded image; BadImage when it is skipped.

    `sample_index` seeds this image's PCA pixel sample together with `options.seed`, so the
    sample does not depend on the order in which worker processes see the images.
    """
    header = read_header(data)
    image, factor = decode(data, header, options.scales[-1], options)
    notes = _notes(header)
    if header.smallest_side < options.crop_size:
        notes.append(f"smaller than the {options.crop_size}px crop")
    records = []
    smallest = None
    shape = full_shape(header, image, factor)
    for side in options.scales:
        scaled = rescale(image, side, shape)
        if smallest is None:
            smallest = scaled
        if scaled is image and factor == 1 and header.is_plain_jpeg:
            encoded = data
            notes.append(f"JPEG bytes kept at S={side}")
        else:
            ok, buffer = cv2.imencode(".jpg", scaled, [cv2.IMWRITE_JPEG_QUALITY, options.quality])
            if not ok:
                raise BadImage(CORRUPT, "OpenCV could not re-encode the image")
            encoded = buffer.tobytes()
        if min(shape) < side:
            notes.append(f"upscaled to S={side}")
        records.append((scaled.shape[0], scaled.shape[1], encoded))

    pixels = smallest.reshape(-1, 3)
    # OpenCV sums in doubles, exact for integers below 2^53 (an image of 3.5e13 pixels).
    channel_sums = np.array([round(v) for v in cv2.sumElems(smallest)[:3]], np.int64)
    k = options.pca_pixels_per_image
    sample = pixels if k >= len(pixels) else pixels[sample_positions(len(pixels), k, options.seed, sample_index)]
    sample_rgb = sample[:, ::-1].astype(np.float64) / 255.0
    # einsum, not a BLAS call: for a 3x3 result BLAS's thread hand-offs cost more than the sums.
    outer = np.einsum("ni,nj->ij", sample_rgb, sample_rgb)
    return Converted(records=records, channel_sums=channel_sums, num_pixels=len(pixels),
                     pca_sum=sample_rgb.sum(axis=0), pca_outer=outer,
                     pca_count=len(sample_rgb), notes=notes)


_GOLDEN = 0x9E3779B97F4A7C15
_MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)


def _splitmix64(x):
    """SplitMix64's output function; x: an int below 2**64 or a uint64 array."""
    if isinstance(x, int):
        x = (x ^ x >> 30) * _MIX[0] & 0xFFFFFFFFFFFFFFFF
        x = (x ^ x >> 27) * _MIX[1] & 0xFFFFFFFFFFFFFFFF
        return x ^ x >> 31
    x ^= x >> np.uint64(30)
    x *= np.uint64(_MIX[0])
    x ^= x >> np.uint64(27)
    x *= np.uint64(_MIX[1])
    return x ^ x >> np.uint64(31)


def sample_positions(n: int, k: int, seed: int, image: int) -> np.ndarray:
    """k of the positions 0 .. n - 1, drawn with replacement by SplitMix64: the image's stream
    starts at a hash of (seed, image) and draw i is the hash of start + i x golden ratio. A
    hash, not a Generator: seeding numpy's Generator per image cost more than the whole colour
    sum (statistics.py), and the draws depend only on these numbers."""
    start = _splitmix64(((seed & 0xFFFFFFFF) << 32 | (image & 0xFFFFFFFF)) * _GOLDEN & 0xFFFFFFFFFFFFFFFF)
    counters = np.uint64(start) + np.arange(1, k + 1, dtype=np.uint64) * np.uint64(_GOLDEN)
    return _splitmix64(counters) % np.uint64(n)


def read_image_file(path: str) -> bytes:
    """The file's bytes; BadImage for a missing file, a directory, an unreadable file."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise BadImage(MISSING_FILE, "no such file") from None
    except IsADirectoryError:
        raise BadImage(NOT_A_FILE, "a directory, not an image file") from None
    except OSError as exc:
        if os.path.isdir(path):
            raise BadImage(NOT_A_FILE, "a directory, not an image file") from None
        raise BadImage(UNREADABLE, exc.strerror or str(exc)) from None
