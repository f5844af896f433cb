"""data_prep/area_resize.c: the area shrink data prep uses must give OpenCV's INTER_AREA pixels
exactly (the patched Caffe transformer shrinks with cv::resize INTER_AREA, and a stored S must
be the image a jittered S would be), for every size, channel count and memory layout."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_prep import area_resize, convert

REPO = Path(__file__).resolve().parents[2]


def opencv(image, width, height):
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def textured(rng, height, width, channels):
    """Noise, half of it blurred: both sharp edges and smooth ramps reach every rounding case."""
    shape = (height, width) if channels == 1 else (height, width, channels)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    return cv2.GaussianBlur(image, (5, 5), 1.5) if rng.random() < 0.5 else image


def test_compiled_code_is_in_use():
    ok, why = area_resize.available()
    assert ok, why


def test_the_cpus_vector_code_is_found():
    widths = area_resize.vector_widths()
    assert widths[-1] == 1 and set(widths) <= {8, 4, 1}
    if os.uname().machine == "x86_64":
        assert 4 in widths  # SSE2 is part of x86-64
        has_avx2 = " avx2" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else None
        if has_avx2 is not None:
            assert (8 in widths) == has_avx2
    image = textured(np.random.default_rng(0), 20, 30, 3)
    unsupported = {8, 4} - set(widths)
    for lanes in unsupported | {2, 16}:
        with pytest.raises(ValueError, match="does not run"):
            area_resize.shrink(image, 13, 11, lanes)


# Each code path (8 lanes with AVX2, 4 with SSE2, plain C) against OpenCV: the widest is what
# runs, the others run on CPUs without AVX2 (or without x86's vectors).
@pytest.mark.parametrize("lanes", [8, 4, 1])
def test_random_sizes_and_channel_counts_match_opencv_bit_for_bit(lanes):
    if lanes not in area_resize.vector_widths():
        pytest.skip(f"this CPU does not run the {lanes}-lane code")
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(300):
        height, width = (int(v) for v in rng.integers(1, 300, 2))
        channels = int(rng.choice([1, 2, 3, 4]))
        new_h, new_w = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
        image = textured(rng, height, width, channels)
        fast = area_resize.shrink(image, new_w, new_h, lanes)
        whole = height % new_h == 0 and width % new_w == 0
        if whole:
            assert fast is None  # OpenCV's integer path: left to OpenCV
            continue
        assert fast is not None, (image.shape, new_h, new_w)
        assert fast.shape == opencv(image, new_w, new_h).shape
        np.testing.assert_array_equal(fast, opencv(image, new_w, new_h), err_msg=f"{image.shape} -> {new_h}x{new_w}")
        checked += 1
    assert checked > 250


@pytest.mark.parametrize("size,new_size", [
    ((375, 500), (256, 341)),     # ImageNet's commonest size to S=256: 3 taps per column
    ((333, 500), (256, 384)),
    ((500, 375), (512, 384)),     # enlarging on one axis: not area's case
    ((1024, 1365), (256, 341)),   # 4x: 5 taps, the generic inner loop
    ((2000, 3000), (257, 385)),   # ~7.8x
    ((257, 300), (256, 299)),     # barely shrunk: 2 taps, slivers under 1e-3 dropped
    ((375, 500), (375, 341)),     # one axis kept
    ((375, 500), (256, 500)),
    ((400, 600), (200, 301)),     # one axis an integer ratio, the other not
    ((7, 5), (2, 1)),
    ((1, 9), (1, 4)),
])
def test_sizes_of_every_kind_match_opencv(size, new_size):
    image = textured(np.random.default_rng(size[0] * 7 + size[1]), *size, 3)
    for lanes in area_resize.vector_widths():
        fast = area_resize.shrink(image, new_size[1], new_size[0], lanes)
        if new_size[0] > size[0] or new_size[1] > size[1]:
            assert fast is None
            continue
        assert fast is not None
        np.testing.assert_array_equal(fast, opencv(image, new_size[1], new_size[0]), err_msg=f"{lanes} lanes")


def test_views_crops_and_flips_are_read_correctly():
    image = textured(np.random.default_rng(3), 300, 400, 3)
    for view in (image[10:290, 7:399], image[:, ::-1], image[::-1], image[:, :, ::-1], image[::2, ::3]):
        for lanes in area_resize.vector_widths():
            np.testing.assert_array_equal(area_resize.shrink(view, 131, 97, lanes),
                                          opencv(np.ascontiguousarray(view), 131, 97))


def test_what_it_does_not_handle_is_left_to_opencv():
    image = textured(np.random.default_rng(4), 64, 96, 3)
    assert area_resize.shrink(image, 48, 32) is None             # 2x on both axes: integer path
    assert area_resize.shrink(image, 120, 80) is None            # enlarging
    assert area_resize.shrink(image.astype(np.uint16), 50, 30) is None
    assert area_resize.shrink(image.astype(np.float32), 50, 30) is None
    # ... and rescale still gives OpenCV's pixels there.
    np.testing.assert_array_equal(convert.rescale(image, 32), opencv(image, 48, 32))


def test_saturated_and_extreme_pixels():
    for value in (0, 255):
        image = np.full((91, 123, 3), value, np.uint8)
        np.testing.assert_array_equal(area_resize.shrink(image, 61, 45), image[:45, :61])
    checker = (np.indices((90, 120)).sum(axis=0) % 2 * 255).astype(np.uint8)
    np.testing.assert_array_equal(area_resize.shrink(checker, 77, 58), opencv(checker, 77, 58))


def run_isolated(code: str, cache: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, VGG_CAFFE_CACHE=str(cache), **env))


def test_compiled_once_into_the_cache_named_by_the_source(tmp_path):
    code = ("from data_prep import area_resize as a; print(a.available()[0]); print(a.library_path())")
    first = run_isolated(code, tmp_path)
    assert first.returncode == 0, first.stderr
    ok, path = first.stdout.split()
    library = Path(path)
    assert ok == "True" and library.parent == tmp_path / "native" and library.is_file()
    assert sorted(p.name for p in library.parent.iterdir()) == [library.name]  # no temporary left
    built_at = library.stat().st_mtime_ns
    again = run_isolated(code, tmp_path)
    assert again.stdout == first.stdout and library.stat().st_mtime_ns == built_at


def test_without_a_compiler_rescale_falls_back_to_opencv_with_the_same_pixels(tmp_path):
    code = ("import numpy as np, cv2\n"
            "from data_prep import area_resize, convert\n"
            "image = np.random.default_rng(1).integers(0, 256, (375, 500, 3), dtype=np.uint8)\n"
            "ok, why = area_resize.available()\n"
            "same = np.array_equal(convert.rescale(image, 256), cv2.resize(image, (341, 256), interpolation=cv2.INTER_AREA))\n"
            "print(ok, same); print(why)\n")
    result = run_isolated(code, tmp_path, CC="false")
    assert result.returncode == 0, result.stderr
    first, why = result.stdout.splitlines()
    assert first == "False True"
    assert "native area resize unavailable" in why and "false failed" in why
    assert not list((tmp_path / "native").iterdir())  # the failed compile left nothing behind
