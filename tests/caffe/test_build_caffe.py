"""tools/build_caffe.py: provenance checks, the patch series, failure messages (foundation issue)."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import caffe
import numpy as np
import pytest
from caffe.io import array_to_datum, datum_to_array

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import build_caffe  # noqa: E402

DOWNLOADS = build_caffe.cache_root() / "downloads"


@pytest.fixture(scope="module")
def downloads():
    """The .dsc and tarballs `make setup` fetched (always there once Caffe was built)."""
    if not (DOWNLOADS / build_caffe.DSC_NAME).is_file():
        pytest.skip(f"no source downloads in {DOWNLOADS}")
    return DOWNLOADS


def test_downloads_verify_against_pinned_dsc(downloads):
    assert build_caffe.verify_source(downloads) == build_caffe.ORIG_SHA256


def test_tampered_tarball_is_refused(downloads, tmp_path):
    for f in downloads.iterdir():
        shutil.copy(f, tmp_path / f.name)
    orig = tmp_path / build_caffe.ORIG_NAME
    data = bytearray(orig.read_bytes())
    data[1000] ^= 0xFF
    orig.write_bytes(bytes(data))
    with pytest.raises(build_caffe.StepError, match=r"^verify source: .*does not match the \.dsc"):
        build_caffe.verify_source(tmp_path)


def test_tampered_dsc_is_refused(downloads, tmp_path):
    for f in downloads.iterdir():
        shutil.copy(f, tmp_path / f.name)
    dsc = tmp_path / build_caffe.DSC_NAME
    dsc.write_text(dsc.read_text().replace("Maintainer", "Maintainer "))
    with pytest.raises(build_caffe.StepError, match=r"^verify source: .*checksum mismatch"):
        build_caffe.verify_source(tmp_path)


def test_series_applies_to_the_orig_tarball_and_a_broken_patch_is_named(downloads, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    subprocess.run(["tar", "xzf", str(downloads / build_caffe.ORIG_NAME), "-C", str(src)], check=True)
    patches = build_caffe.patch_series()
    assert [p.name for p in patches] == sorted(p.name for p in patches)  # numbered in order
    build_caffe.apply_patches(src, patches)
    assert "smallest_side_min" in (src / "src/caffe/proto/caffe.proto").read_text()
    # Applying the series again must fail (already applied), naming the first patch.
    with pytest.raises(build_caffe.StepError, match=rf"^patch: {patches[0].name} does not apply"):
        build_caffe.apply_patches(src, patches[:1])


def test_no_caffe_source_is_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    caffe_files = [f for f in tracked.splitlines()
                   if f.startswith(("src/caffe/", "include/caffe/", "python/caffe/")) or f.endswith((".cpp", ".cu", ".hpp"))]
    assert caffe_files == []


def test_cache_key_follows_patch_content(tmp_path, monkeypatch):
    key, recipe = build_caffe.build_key(gpu=False)
    fake = tmp_path / "caffe_patches"
    shutil.copytree(build_caffe.PATCH_DIR, fake)
    with open(fake / sorted(p.name for p in fake.glob("*.patch"))[-1], "a") as f:
        f.write("\n")
    monkeypatch.setattr(build_caffe, "PATCH_DIR", fake)
    assert build_caffe.build_key(gpu=False)[0] != key
    assert json.dumps(recipe)  # the recipe recorded in the manifest is plain data


def test_installed_caffe_matches_this_checkout():
    """The venv's Caffe is the build of the current patches (not a stale cache entry)."""
    manifest = json.loads((build_caffe.install_dir() / "manifest.json").read_text())
    assert manifest["patches"] == build_caffe.build_key(gpu=False)[1]["patches"]
    assert Path(caffe.__file__).resolve().is_relative_to(build_caffe.install_dir())
    out = subprocess.run([str(REPO / ".venv/bin/caffe"), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "caffe version 1.0.0" in (out.stdout + out.stderr)


def test_numpy2_arrays_round_trip_through_datum():
    assert int(np.__version__.split(".")[0]) >= 2
    arr = np.random.default_rng(0).integers(0, 256, (3, 5, 7)).astype(np.uint8)
    datum = array_to_datum(arr, label=4)
    back = datum_to_array(datum)
    assert back.dtype == np.uint8 and np.array_equal(back, arr) and datum.label == 4
    back[0, 0, 0] ^= 1  # writable, as np.fromstring's result was
    floats = np.random.default_rng(1).normal(size=(2, 3, 4))
    assert np.allclose(datum_to_array(array_to_datum(floats)), floats)
