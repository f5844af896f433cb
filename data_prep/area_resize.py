"""Area-averaging shrink, identical to `cv2.resize(..., interpolation=cv2.INTER_AREA)`, faster.

Sec. 3.1's training images are rescaled to smallest side S; data prep shrinks them with
area averaging (convert.rescale). For the common non-integer ratios OpenCV's area code is
the slowest step of the conversion: 1.5 ms for 500x375 -> 341x256 on this 2-core machine,
more than decoding the JPEG. area_resize.c does the same arithmetic in the same order, so
the pixels are identical (tests/data_prep/test_area_resize.py), in 0.27 ms with AVX2 (0.37 ms
with SSE2 alone; both measured in one run, as OpenCV's time varies by a third from run to run
on this shared machine).

The C file is compiled on first use with the system's C compiler into the project's cache
(the directory Caffe's builds live in, `VGG_CAFFE_CACHE` or ~/.cache/vgg-caffe), named by
the hash of its source and flags, so an edited source is rebuilt and a rerun costs nothing.
Without a C compiler `shrink` returns None and the caller keeps using OpenCV: the pixels
are the same, only slower, and `available()` says why.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np

from tools.build_caffe import cache_root

from . import atomic

SOURCE = Path(__file__).with_name("area_resize.c")
# No contraction into fused multiply-adds: OpenCV rounds every product and sum separately.
CFLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared"]

_library = None
_error: str | None = None
_widest = 0


def library_path() -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(CFLAGS).encode()).hexdigest()[:16]
    return cache_root() / "native" / f"area_resize-{digest}.so"


def _compile(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_path(str(target))
    try:
        compiler = os.environ.get("CC", "cc")
        r = subprocess.run([compiler, *CFLAGS, "-o", tmp, str(SOURCE), "-lm"], capture_output=True, text=True)
        if r.returncode != 0:
            raise OSError(f"{compiler} failed: {(r.stderr.strip().splitlines() or ['no output'])[0]}")
        os.replace(tmp, target)  # atomic: concurrent first uses each compile, one wins
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load():
    global _library, _error
    if _library is not None or _error is not None:
        return _library
    try:
        path = library_path()
        if not path.is_file():
            _compile(path)
        lib = ctypes.CDLL(str(path))
        fn = lib.area_resize_u8
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_long,
                       ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_int, ctypes.c_int]
        lib.area_resize_widest.restype = ctypes.c_int
        global _widest
        _widest = lib.area_resize_widest()
        _library = fn
    except OSError as exc:  # no compiler, a failed compile, a library that does not load
        _error = f"native area resize unavailable ({exc}); using OpenCV's"
    return _library


def available() -> tuple[bool, str]:
    """(whether the compiled shrink is in use, why not)."""
    return _load() is not None, _error or ""


def vector_widths() -> tuple[int, ...]:
    """The lane counts this CPU runs (8: AVX2, 4: SSE2, 1: plain C); () without the library."""
    return tuple(w for w in (8, 4, 1) if _load() is not None and w <= _widest)


def shrink(image: np.ndarray, width: int, height: int, lanes: int = 0) -> np.ndarray | None:
    """`cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)` for a uint8 image
    shrunk by a non-integer ratio; None where this code does not apply (enlarging, a
    whole-number ratio on both axes, other pixel types, no compiler): use OpenCV there.
    `lanes`: which code computes it (one of vector_widths(); 0, the widest), for the tests."""
    fn = _load()
    if fn is None or image.dtype != np.uint8 or image.ndim not in (2, 3):
        return None
    channels = 1 if image.ndim == 2 else image.shape[2]
    if image.strides[-1] != 1 or (image.ndim == 3 and image.strides[1] != channels):
        image = np.ascontiguousarray(image)
    out = np.empty((height, width) + image.shape[2:], np.uint8)
    rc = fn(image.ctypes.data, image.shape[0], image.shape[1], image.strides[0],
            out.ctypes.data, height, width, out.strides[0], channels, lanes)
    if rc == -3:
        raise ValueError(f"this CPU does not run the {lanes}-lane code (it runs {vector_widths()})")
    if rc == -2:
        raise MemoryError(f"area resize of a {image.shape} image")
    return out if rc == 0 else None
