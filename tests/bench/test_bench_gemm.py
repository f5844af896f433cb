"""The GEMM limit is measured through the BLAS Caffe itself calls, and computes the right product."""
import os

import numpy as np
import pytest

from bench import gemm
from prototxt_gen import table


@pytest.fixture(scope="module")
def blas():
    return gemm.Blas(gemm.caffe_blas())


def test_the_library_is_the_openblas_libcaffe_links(blas):
    libcaffe = gemm.libcaffe_path()
    linked = {os.path.realpath(path) for _, path in gemm.linked_libraries(libcaffe)}
    assert blas.path in linked
    assert "openblas" in blas.config().lower()
    # OpenBLAS's default, what `caffe` runs with: every core this process may use
    expected = int(os.environ.get("OPENBLAS_NUM_THREADS", len(os.sched_getaffinity(0))))
    assert blas.threads() == expected


def test_sgemm_computes_row_major_products(blas):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((37, 53), dtype=np.float32)  # non-square: catches a swapped lda/ldb
    b = rng.standard_normal((53, 29), dtype=np.float32)
    c = np.full((37, 29), np.nan, dtype=np.float32)
    blas.sgemm(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4)


def test_sgemm_refuses_what_it_cannot_multiply(blas):
    a = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError):
        blas.sgemm(a, np.zeros((6, 3), np.float32), np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError):
        blas.sgemm(a, np.zeros((5, 3), np.float64), np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError):
        blas.sgemm(a, np.zeros((3, 5), np.float32).T, np.zeros((4, 3), np.float32))


def test_limit_reports_a_positive_rate_per_size(blas):
    result = gemm.limit(blas, sizes=(64, 128), repeats=1)
    assert set(result["per_size"]) == {"64", "128"}
    assert result["gemm_gflops"] == pytest.approx(max(result["per_size"].values()), abs=0.01)
    assert result["gemm_gflops"] > 0


@pytest.mark.parametrize("name", ["C", "D", "B-5x5"])
def test_conv_shapes_are_caffes_per_image_gemms(name):
    """M x N x K per layer, once per image, add up to the conv multiply-adds of Table 1."""
    config = table.resolve(name)
    shapes = gemm.conv_shapes(name, batch=3)
    conv_macs = sum(c.in_size ** 2 * c.kernel ** 2 * c.in_channels * c.out_channels
                    for c in table.conv_layers(config))
    assert sum(s["m"] * s["n"] * s["k"] * s["calls"] for s in shapes) == 3 * conv_macs
    assert [s["layer"] for s in shapes] == config.conv_names()
    assert shapes[0]["k"] == 3 * table.conv_layers(config)[0].kernel ** 2


def test_cli_prints_json(capsys):
    assert gemm.main(["--sizes", "32", "--repeats", "1"]) == 0
    import json
    out = json.loads(capsys.readouterr().out)
    assert out["gemm_gflops"] > 0 and out["blas_threads"] >= 1


def test_cli_reports_a_missing_library(capsys):
    assert gemm.main(["--sizes", "32", "--blas", "/nonexistent/libopenblas.so"]) == 1
    assert "bench.gemm: error" in capsys.readouterr().err


def test_one_gemm_for_the_batch_only_where_its_buffer_is_affordable():
    class CountingBlas:
        def seconds(self, m, n, k, repeats, calls=1):
            return 1e-12 * m * n * k * calls

    rows = {r["layer"]: r for r in gemm.conv_gemm(CountingBlas(), "D", batch=8)}
    # conv1_2's columns for 8 images: 576 x 8*224*224 floats = 925 MB
    assert rows["conv1_2"]["batched_gemm_ms"] is None
    # conv5_1's: 4608 x 8*14*14 floats = 29 MB; the same multiply-adds as the 8 per-image calls
    assert rows["conv5_1"]["batched_gemm_ms"] == pytest.approx(rows["conv5_1"]["gemm_ms"])
    assert rows["conv5_1"]["gemm_gflops"] == pytest.approx(2000.0)


def reference_im2col(image, kernel, pad):
    channels, height, width = image.shape
    padded = np.pad(image, ((0, 0), (pad, pad), (pad, pad)))
    out_h, out_w = height + 2 * pad - kernel + 1, width + 2 * pad - kernel + 1
    rows = [padded[c, i:i + out_h, j:j + out_w].ravel()
            for c in range(channels) for i in range(kernel) for j in range(kernel)]
    return np.stack(rows)


@pytest.mark.parametrize("kernel, pad", [(3, 1), (5, 2), (1, 0)])
def test_caffes_im2col_is_called_with_the_right_arguments(kernel, pad):
    image = np.random.default_rng(kernel).standard_normal((3, 6, 7), dtype=np.float32)
    columns = gemm.im2col(gemm.caffe_im2col(), image, kernel, pad)
    np.testing.assert_array_equal(columns, reference_im2col(image, kernel, pad))
