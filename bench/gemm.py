"""The machine's limit for Caffe's convolutions: single-precision GEMM with the very BLAS Caffe links.

Caffe's CPU convolution (BaseConvolutionLayer::forward_cpu_gemm) is im2col followed by one
`cblas_sgemm` per image, so large square SGEMM through the same library and thread count is the
ceiling Caffe's conv layers can reach. The library is found by `ldd` of Caffe's libcaffe.so
(Debian's OpenBLAS, pthread build) and called through ctypes; OpenBLAS's thread count is left at
its default (all cores, or OPENBLAS_NUM_THREADS when set), which is what `caffe` runs with.

    python -m bench.gemm [--sizes 2048 4096] [--repeats 3]      # prints JSON
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tools.openblas_core import ProbeError, linked_libraries

CBLAS_ROW_MAJOR = 101
CBLAS_NO_TRANS = 111


class BlasNotFound(ProbeError):
    """No BLAS found behind Caffe (ldd's own failures raise ProbeError, this class's base)."""


def libcaffe_path() -> str:
    """libcaffe.so as the `caffe` tool loads it."""
    from prototxt_gen.timing import caffe_binary

    for soname, path in linked_libraries(caffe_binary()):
        if soname.startswith("libcaffe"):
            return path
    raise BlasNotFound(f"{caffe_binary()} does not link a libcaffe")


def caffe_blas(libcaffe: str | None = None) -> str:
    """The first library in libcaffe's load order that defines cblas_sgemm: the one Caffe's calls bind to."""
    libcaffe = libcaffe or libcaffe_path()
    for soname, path in linked_libraries(libcaffe):
        if "blas" not in soname:
            continue
        try:
            if hasattr(ctypes.CDLL(path), "cblas_sgemm"):
                return os.path.realpath(path)
        except OSError:
            continue
    raise BlasNotFound(f"no library linked by {libcaffe} defines cblas_sgemm")


@dataclass
class Blas:
    path: str

    def __post_init__(self):
        self.lib = ctypes.CDLL(self.path)
        self.lib.cblas_sgemm.restype = None
        self.lib.cblas_sgemm.argtypes = [ctypes.c_int] * 6 + [
            ctypes.c_float, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
            ctypes.c_float, ctypes.c_void_p, ctypes.c_int]

    def threads(self) -> int | None:
        getter = getattr(self.lib, "openblas_get_num_threads", None)
        return int(getter()) if getter else None

    def config(self) -> str:
        getter = getattr(self.lib, "openblas_get_config", None)
        if getter is None:
            return os.path.basename(self.path)
        getter.restype = ctypes.c_char_p
        core = getattr(self.lib, "openblas_get_corename", None)
        text = getter().decode()
        if core is not None:
            core.restype = ctypes.c_char_p
            text += f" (core {core().decode()})"
        return text

    def sgemm(self, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> None:
        """c = a @ b, row-major float32, as caffe_cpu_gemm calls it (NoTrans, NoTrans)."""
        m, k = a.shape
        k2, n = b.shape
        if k != k2 or c.shape != (m, n):
            raise ValueError(f"shapes {a.shape} @ {b.shape} -> {c.shape} do not match")
        for x in (a, b, c):
            if x.dtype != np.float32 or not x.flags.c_contiguous:
                raise ValueError("sgemm needs C-contiguous float32 arrays")
        self.lib.cblas_sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_NO_TRANS, m, n, k, 1.0,
                             a.ctypes.data, k, b.ctypes.data, n, 0.0, c.ctypes.data, n)

    def seconds(self, m: int, n: int, k: int, repeats: int, calls: int = 1) -> float:
        """Best wall-clock time of `calls` back-to-back (m x k) @ (k x n) products, after one warm-up."""
        # the values do not change the speed (no denormals); filling is cheaper than drawing
        a = np.full((m, k), 0.5, dtype=np.float32)
        b = np.full((k, n), 0.25, dtype=np.float32)
        c = np.empty((m, n), dtype=np.float32)
        self.sgemm(a, b, c)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(calls):
                self.sgemm(a, b, c)
            best = min(best, time.perf_counter() - start)
        return best


def gflops(m: int, n: int, k: int, seconds: float, calls: int = 1) -> float:
    return 2.0 * m * n * k * calls / seconds / 1e9


def limit(blas: Blas, sizes=(2048, 4096), repeats: int = 3) -> dict:
    """Square SGEMM GFLOP/s per size; the limit is the best of them."""
    per_size = {n: gflops(n, n, n, blas.seconds(n, n, n, repeats)) for n in sizes}
    return dict(gemm_gflops=max(per_size.values()),
                per_size={str(n): round(g, 2) for n, g in per_size.items()},
                blas=blas.path, blas_config=blas.config(), blas_threads=blas.threads(),
                repeats=repeats)


def conv_shapes(config_name: str, batch: int) -> list[dict]:
    """Caffe's forward GEMM per conv layer: (Cout) x (H*W) x (Cin*k*k), called once per image."""
    from prototxt_gen import table

    return [dict(layer=c.name, m=c.out_channels, n=c.in_size * c.in_size,
                 k=c.in_channels * c.kernel * c.kernel, calls=batch)
            for c in table.conv_layers(table.resolve(config_name))]


# A batched im2col buffer (K x batch*H*W floats) larger than this is not worth timing: a patch
# could not afford it either (conv1_2 of D at batch 8 would need 925 MB).
BATCHED_BUFFER_LIMIT = 256 * 2**20


def conv_gemm(blas: Blas, config_name: str, batch: int, repeats: int = 2) -> list[dict]:
    """Time each conv layer's GEMMs alone: as forward_cpu_gemm issues them (one call per image),
    and as one call over the whole batch (N = batch x H x W) where its column buffer stays small."""
    rows = []
    for shape in conv_shapes(config_name, batch):
        m, n, k, calls = shape["m"], shape["n"], shape["k"], shape["calls"]
        seconds = blas.seconds(m, n, k, repeats, calls=calls)
        row = dict(shape, gemm_ms=round(seconds * 1e3, 3), gemm_gflops=round(gflops(m, n, k, seconds, calls), 2),
                   batched_gemm_ms=None, batched_gemm_gflops=None)
        if k * n * calls * 4 <= BATCHED_BUFFER_LIMIT:
            batched = blas.seconds(m, n * calls, k, repeats)
            row.update(batched_gemm_ms=round(batched * 1e3, 3), batched_gemm_gflops=round(gflops(m, n * calls, k, batched), 2))
        rows.append(row)
    return rows


IM2COL_SYMBOL = "_ZN5caffe10im2col_cpuIfEEvPKT_iiiiiiiiiiiPS1_"  # caffe::im2col_cpu<float>


def caffe_im2col(libcaffe: str | None = None):
    """Caffe's own im2col_cpu<float> (src/caffe/util/im2col.cpp), called through ctypes."""
    lib = ctypes.CDLL(libcaffe or libcaffe_path())
    function = getattr(lib, IM2COL_SYMBOL)
    function.restype = None
    function.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 11 + [ctypes.c_void_p]
    return function


def im2col(function, image: np.ndarray, kernel: int, pad: int) -> np.ndarray:
    """(C, H, W) -> (C*k*k, H*W) columns, stride 1, as a conv layer's forward makes them."""
    channels, height, width = image.shape
    image = np.ascontiguousarray(image, dtype=np.float32)
    out_h, out_w = height + 2 * pad - kernel + 1, width + 2 * pad - kernel + 1
    columns = np.empty((channels * kernel * kernel, out_h * out_w), dtype=np.float32)
    function(image.ctypes.data, channels, height, width, kernel, kernel, pad, pad, 1, 1, 1, 1, columns.ctypes.data)
    return columns


def conv_im2col(config_name: str, batch: int, repeats: int = 2) -> dict[str, float]:
    """{layer: ms} of Caffe's im2col for `batch` images (forward_cpu_gemm runs it once per image;
    1x1 convolutions skip it)."""
    from prototxt_gen import table

    function = caffe_im2col()
    times = {}
    for conv in table.conv_layers(table.resolve(config_name)):
        if conv.kernel == 1:
            times[conv.name] = 0.0
            continue
        image = np.full((conv.in_channels, conv.in_size, conv.in_size), 0.5, dtype=np.float32)
        im2col(function, image, conv.kernel, conv.pad)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(batch):
                im2col(function, image, conv.kernel, conv.pad)
            best = min(best, time.perf_counter() - start)
        times[conv.name] = round(best * 1e3, 3)
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gemm", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--conv-config", help="also time the per-image conv GEMMs of this config")
    p.add_argument("--batch", type=int, default=8, help="images per conv layer (default 8)")
    p.add_argument("--blas", help="library to load (default: the one libcaffe.so links)")
    args = p.parse_args(argv)
    if min(args.sizes) < 1 or args.repeats < 1 or args.batch < 1:
        p.error("--sizes, --repeats and --batch must be positive")
    try:
        blas = Blas(args.blas or caffe_blas())
    except (ProbeError, FileNotFoundError, OSError) as exc:
        print(f"bench.gemm: error: {exc}", file=sys.stderr)
        return 1
    result = limit(blas, args.sizes, args.repeats)
    if args.conv_config:
        result["conv"] = conv_gemm(blas, args.conv_config, args.batch)
        for row, (layer, ms) in zip(result["conv"], conv_im2col(args.conv_config, args.batch).items()):
            row["im2col_ms"] = ms
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
