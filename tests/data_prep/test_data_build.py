"""vgg-data end to end: LMDBs per scale, bad inputs skipped and reported one by one, statistics,
shuffling, and outputs that are complete or absent (disk full, unwritable target, interrupts)."""
import contextlib
import io
import json
import os
import re
import resource
import subprocess
import sys

import cv2
import numpy as np
import pytest

from data_prep import build as build_module
from data_prep import cli
from data_prep.stats import load_stats
from data_prep_helpers import decode_datum, direct_rescale, jpeg, photo, read_lmdb, write
from data_prep_images import cmyk_jpeg, png, png_bomb, with_exif_orientation

SCALES = (64, 96)


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def records_by_path(lmdb_path, caffe_pb2):
    return {key.split("_", 1)[1]: datum for key, datum in read_lmdb(lmdb_path, caffe_pb2)}


def rgba_png():
    rgba = np.zeros((70, 80, 4), np.uint8)
    rgba[:, :, :3] = (30, 60, 200)     # R, G, B
    rgba[:, :40, 3] = 255              # left half opaque, right half transparent
    return png(rgba, colour_type=6)


def cmyk_file():
    stored = np.zeros((72, 80, 4), np.uint8)
    stored[:, :, 3] = 255
    stored[:, :, :3] = (250, 10, 10)   # red, in Adobe's inverted CMYK with no black
    return cmyk_jpeg(stored)


# path in the list -> (file content or None for no file, label)
GOOD = {
    "good/wide.jpg": (lambda: jpeg(photo(1, 150, 200)), 0),
    "good/tall.jpg": (lambda: jpeg(photo(2, 200, 133)), 1),
    "good/small.jpg": (lambda: jpeg(photo(3, 40, 60)), 2),              # upscaled at both scales
    "good/at_s.jpg": (lambda: jpeg(photo(4, 64, 90)), 3),               # bytes kept at S=64
    "colour/gray.jpg": (lambda: jpeg(cv2.cvtColor(photo(5, 80, 90), cv2.COLOR_BGR2GRAY)), 4),
    "colour/cmyk.jpg": (cmyk_file, 5),
    "colour/palette.png": (lambda: png(np.repeat(np.array([[0, 1]], np.uint8), 40, axis=1).repeat(70, axis=0),
                                       colour_type=3, palette=[[0, 200, 0], [0, 0, 250]]), 6),
    "colour/rgba.png": (rgba_png, 7),
    "colour/deep.png": (lambda: png(np.full((70, 70, 3), 40000, np.uint16), colour_type=2, bit_depth=16), 8),
    "colour/rotated.jpg": (lambda: with_exif_orientation(jpeg(photo(6, 70, 120)), 6), 9),
}


def truncated():
    data = jpeg(photo(7, 120, 160))
    return data[:len(data) // 2]


BAD = {
    "bad/truncated.jpg": (truncated, "truncated"),
    "bad/corrupt.jpg": (lambda: b"\xff\xd8\xff" + bytes(300), "corrupt"),
    "bad/empty.jpg": (lambda: b"", "empty-file"),
    "bad/notes.jpg": (lambda: b"these are not pixels\n" * 20, "not-an-image"),
    "bad/folder.jpg": (None, "not-a-file"),
    "bad/bomb.png": (lambda: png_bomb(20000), "too-many-pixels"),
    "bad/missing.jpg": (None, "missing-file"),
}
LIST_PROBLEMS = {  # list line -> (where in report.txt, reason)
    "../outside.jpg 1": ("../outside.jpg", "path-escapes-root"),
    "good/wide.jpg cat": ("good/wide.jpg", "bad-label"),
    "good/wide.jpg 99": ("good/wide.jpg", "label-out-of-range"),
    "no-label-here.jpg": ("list.txt:", "malformed-line"),
}


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, caffe_pb2):
    """One run over good, bad and oddly coloured inputs (two worker processes)."""
    base = tmp_path_factory.mktemp("mixed")
    root = base / "images"
    lines = []
    for path, (make, label) in GOOD.items():
        write(root / path, make())
        lines.append(f"{path} {label}")
    for path, (make, _) in BAD.items():
        if make is not None:
            write(root / path, make())
        lines.append(f"{path} 1")
    (root / "bad" / "folder.jpg").mkdir()
    (base / "outside.jpg").write_bytes(jpeg(photo(8, 80, 80)))
    lines += list(LIST_PROBLEMS)
    (base / "list.txt").write_text("\n".join(lines) + "\n")
    code, out, err = run("--root", root, "--list", base / "list.txt", "--out", base / "out",
                         "--scales", *SCALES, "--num-classes", 20, "--workers", 2)
    report = (base / "out" / "report.txt").read_text().splitlines()
    return dict(base=base, out=base / "out", code=code, stdout=out, stderr=err, report=report,
                records={s: records_by_path(base / "out" / f"S{s}_lmdb", caffe_pb2) for s in SCALES})


def report_reason(report, where):
    found = [line.split("\t") for line in report if line.startswith(where)]
    assert len(found) == 1, (where, report)
    return found[0][1]


@pytest.mark.parametrize("path", sorted(BAD))
def test_bad_file_is_skipped_and_reported_with_its_reason(mixed_run, path):
    assert report_reason(mixed_run["report"], path + "\t") == BAD[path][1]
    assert all(path not in records for records in mixed_run["records"].values())


@pytest.mark.parametrize("line", sorted(LIST_PROBLEMS))
def test_bad_list_line_is_skipped_and_reported_with_its_reason(mixed_run, line):
    where, reason = LIST_PROBLEMS[line]
    matches = [entry.split("\t") for entry in mixed_run["report"] if entry.split("\t")[1] == reason]
    assert len(matches) == 1 and matches[0][0].startswith(where if where != "list.txt:" else str(mixed_run["base"]))


def test_report_has_one_line_per_skipped_input_and_the_run_goes_on(mixed_run):
    assert len(mixed_run["report"]) == len(BAD) + len(LIST_PROBLEMS)
    for records in mixed_run["records"].values():
        assert set(records) == set(GOOD)


def test_too_many_bad_inputs_give_a_non_zero_exit_with_one_line(mixed_run):
    assert mixed_run["code"] == 1
    error_lines = [line for line in mixed_run["stderr"].splitlines() if "error" in line]
    assert len(error_lines) == 1 and "--max-bad-fraction" in error_lines[0]
    assert "Skipped 11" in mixed_run["stdout"] and "truncated" in mixed_run["stdout"]


@pytest.mark.parametrize("path", sorted(GOOD))
def test_good_image_is_stored_as_3_channel_bgr_at_every_scale_with_its_label(mixed_run, path):
    for side in SCALES:
        datum = mixed_run["records"][side][path]
        image = decode_datum(datum)
        assert image.ndim == 3 and image.shape[2] == 3
        assert min(image.shape[:2]) == side
        assert (datum.height, datum.width, datum.channels) == (*image.shape[:2], 3)
        assert datum.label == GOOD[path][1] and datum.encoded


def image_at(mixed_run, path, side=SCALES[0]):
    return decode_datum(mixed_run["records"][side][path]).astype(int)


def test_small_image_is_upscaled_and_counted(mixed_run):
    assert image_at(mixed_run, "good/small.jpg").shape[:2] == (64, 96)
    assert re.search(r"upscaled to S=64\s+1\b", mixed_run["stdout"])
    assert re.search(r"upscaled to S=96\s+\d", mixed_run["stdout"])


def test_jpeg_already_at_s_keeps_its_bytes(mixed_run):
    source = (mixed_run["base"] / "images" / "good" / "at_s.jpg").read_bytes()
    assert mixed_run["records"][64]["good/at_s.jpg"].data == source
    assert mixed_run["records"][96]["good/at_s.jpg"].data != source


def test_grayscale_image_has_equal_channels(mixed_run):
    image = image_at(mixed_run, "colour/gray.jpg")
    assert np.abs(image - image[:, :, :1]).max() <= 3


def test_cmyk_image_is_red_in_bgr(mixed_run):
    b, g, r = image_at(mixed_run, "colour/cmyk.jpg").reshape(-1, 3).mean(axis=0)
    assert r > 235 and g < 20 and b < 20


def test_palette_image_has_its_palette_colours(mixed_run):
    image = image_at(mixed_run, "colour/palette.png")
    assert np.abs(image[32, 4] - [0, 200, 0]).max() <= 6    # left: green
    assert np.abs(image[32, -5] - [250, 0, 0]).max() <= 6   # right: blue (BGR)


def test_transparent_pixels_become_white(mixed_run):
    image = image_at(mixed_run, "colour/rgba.png")
    assert np.abs(image[32, 5] - [200, 60, 30]).max() <= 6
    assert np.abs(image[32, -5] - [255, 255, 255]).max() <= 3


def test_16_bit_image_is_scaled_to_8_bits(mixed_run):
    assert np.abs(image_at(mixed_run, "colour/deep.png") - round(40000 / 257)).max() <= 2


def test_exif_rotated_image_is_stored_upright(mixed_run):
    assert image_at(mixed_run, "colour/rotated.jpg").shape[:2] == (round(120 * 64 / 70), 64)


# --- Order and keys ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    base = tmp_path_factory.mktemp("small")
    sizes = [(60, 80), (80, 60), (64, 64), (50, 120), (90, 70), (70, 100)]
    lines = []
    for i, (h, w) in enumerate(sizes):
        write(base / "images" / f"cls{i % 2}" / f"img {i}.jpg", jpeg(photo(100 + i, h, w)))
        lines.append(f"cls{i % 2}/img {i}.jpg {i % 2}\n")
    (base / "list.txt").write_text("".join(lines))
    return base


def keys_of(out, caffe_pb2, side=48):
    return [key for key, _ in read_lmdb(out / f"S{side}_lmdb", caffe_pb2)]


def build_small(small_set, out, *extra):
    code, stdout, err = run("--root", small_set / "images", "--list", small_set / "list.txt", "--out", out,
                            "--scales", 48, 72, "--workers", 1, "--no-progress", *extra)
    assert code == 0, err
    return stdout


def test_keys_are_caffe_style_and_the_shuffle_is_seeded(small_set, tmp_path, caffe_pb2):
    build_small(small_set, tmp_path / "a", "--seed", 1)
    build_small(small_set, tmp_path / "b", "--seed", 1)
    build_small(small_set, tmp_path / "c", "--seed", 2)
    build_small(small_set, tmp_path / "d", "--no-shuffle")
    listed = [line.rsplit(" ", 1)[0] for line in (small_set / "list.txt").read_text().splitlines()]
    keys = keys_of(tmp_path / "a", caffe_pb2)
    assert all(re.fullmatch(r"\d{8}_cls\d/img \d\.jpg", key) for key in keys)
    assert [int(key[:8]) for key in keys] == list(range(len(listed)))
    assert keys == keys_of(tmp_path / "b", caffe_pb2) == keys_of(tmp_path / "a", caffe_pb2, side=72)
    assert sorted(k[9:] for k in keys) == sorted(listed)
    assert [k[9:] for k in keys] != listed  # shuffled
    assert [k[9:] for k in keys_of(tmp_path / "c", caffe_pb2)] != [k[9:] for k in keys]
    assert [k[9:] for k in keys_of(tmp_path / "d", caffe_pb2)] == listed


def test_class_tree_with_a_synset_file(small_set, tmp_path, caffe_pb2):
    (tmp_path / "synsets.txt").write_text("cls1 second folder first\ncls0 first folder second\n")
    code, _, err = run("--root", small_set, "--list", small_set / "images", "--classes", tmp_path / "synsets.txt",
                       "--out", tmp_path / "out", "--scales", 48, "--workers", 1, "--no-progress")
    assert code == 0, err
    labels = {key.split("_", 1)[1]: datum.label for key, datum in read_lmdb(tmp_path / "out" / "S48_lmdb", caffe_pb2)}
    assert labels == {f"images/cls{i % 2}/img {i}.jpg": 1 - i % 2 for i in range(6)}


# --- Statistics --------------------------------------------------------------------------------

def training_pixels(small_set, side, rescale):
    """Every pixel of the training images rescaled to `side` by `rescale`, from the sources."""
    pixels = []
    for line in (small_set / "list.txt").read_text().splitlines():
        source = cv2.imread(str(small_set / "images" / line.rsplit(" ", 1)[0]), cv2.IMREAD_COLOR)
        pixels.append(rescale(source, side).reshape(-1, 3))
    return np.concatenate(pixels)


def numpy_statistics(pixels):
    """(mean BGR, eigenvalues descending, eigenvectors as rows) of BGR pixels, colour PCA in RGB [0, 1]."""
    rgb = pixels[:, ::-1] / 255.0
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(rgb, rowvar=False, bias=True))
    return pixels.mean(axis=0), eigenvalues[::-1], eigenvectors[:, ::-1].T


@pytest.fixture(scope="module")
def all_pixel_stats(small_set, tmp_path_factory):
    # A sample bigger than any image takes all its pixels, so numpy can recompute everything.
    out = tmp_path_factory.mktemp("stats") / "out"
    build_small(small_set, out, "--pca-pixels-per-image", 10**6)
    return load_stats(out / "stats.json")


def test_mean_and_pca_are_exactly_numpys_on_the_same_pixels(small_set, all_pixel_stats):
    from data_prep.convert import rescale

    stats = all_pixel_stats
    pixels = training_pixels(small_set, 48, rescale)
    mean, eigenvalues, eigenvectors = numpy_statistics(pixels)
    # Tolerances: the mean is exact integer sums (1e-9 relative covers the float division);
    # the covariance is float64 sums of [0, 1] values (1e-7 relative on the eigenvalues).
    assert stats.num_pixels == len(pixels) == stats.pca.sample_pixels and stats.num_images == 6
    assert np.allclose(stats.mean_bgr, mean, rtol=1e-9, atol=0)
    assert np.allclose(stats.pca.eigenvalues, eigenvalues, rtol=1e-7, atol=1e-9)
    for mine, theirs in zip(stats.pca.eigenvectors_rgb, eigenvectors):
        assert abs(np.dot(mine, theirs)) == pytest.approx(1.0, abs=1e-7)  # the same axis, any sign
        assert max(mine, key=abs) > 0


def test_mean_and_pca_are_close_to_numpys_on_an_opencv_area_rescale(small_set, all_pixel_stats):
    stats = all_pixel_stats
    mean, eigenvalues, eigenvectors = numpy_statistics(training_pixels(small_set, 48, direct_rescale))
    # Tolerances: the records are JPEG-encoded at quality 95 after the rescale, which moves the
    # mean by hundredths of a grey level and the covariance by a fraction of 1%.
    assert np.allclose(stats.mean_bgr, mean, atol=0.05)
    assert np.allclose(stats.pca.eigenvalues, eigenvalues, rtol=0.01)
    for mine, theirs in zip(stats.pca.eigenvectors_rgb, eigenvectors):
        assert abs(np.dot(mine, theirs)) > 0.999


def test_mean_blobproto_holds_the_mean_pixel(small_set, tmp_path, caffe_pb2):
    build_small(small_set, tmp_path / "out")
    blob = caffe_pb2.BlobProto()
    blob.ParseFromString((tmp_path / "out" / "mean.binaryproto").read_bytes())
    assert (blob.num, blob.channels, blob.height, blob.width) == (1, 3, 1, 1)
    assert np.allclose(blob.data, load_stats(tmp_path / "out" / "stats.json").mean_bgr, atol=1e-4)


def test_pca_sample_is_seeded(small_set, tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        build_small(small_set, tmp_path / name, "--seed", seed, "--pca-pixels-per-image", 50)
    a, b, c = (json.loads((tmp_path / n / "stats.json").read_text())["pca"] for n in "abc")
    assert a == b and a["sample_pixels"] == 300 and a["seed"] == 5
    assert a["eigenvalues"] != c["eigenvalues"]


# --- Exit codes and flags ----------------------------------------------------------------------

def test_bad_fraction_threshold_decides_the_exit_code(mixed_run, tmp_path):
    fraction = len(mixed_run["report"]) / (len(GOOD) + len(BAD) + len(LIST_PROBLEMS))
    args = ["--root", mixed_run["base"] / "images", "--list", mixed_run["base"] / "list.txt",
            "--scales", 48, "--num-classes", 20, "--workers", 1, "--no-progress"]
    assert run(*args, "--out", tmp_path / "a", "--max-bad-fraction", round(fraction + 0.01, 3))[0] == 0
    assert run(*args, "--out", tmp_path / "b", "--max-bad-fraction", round(fraction - 0.01, 3))[0] == 1


def test_nothing_convertible_is_an_error_and_publishes_no_lmdb(tmp_path):
    write(tmp_path / "images" / "a.jpg", b"")
    (tmp_path / "list.txt").write_text("a.jpg 0\nb.jpg 1\n")
    code, _, err = run("--root", tmp_path / "images", "--list", tmp_path / "list.txt", "--out", tmp_path / "out",
                       "--scales", 48, "--workers", 1, "--no-progress")
    assert code == 1 and "no image could be converted" in err and len(err.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path / "out")) == ["report.txt"]


@pytest.mark.parametrize("flags", [["--quality", "101"], ["--scales", "0"], ["--max-bad-fraction", "2"],
                                   ["--frobnicate"], ["--workers", "-1"]])
def test_wrong_flags_exit_2(tmp_path, flags):
    with pytest.raises(SystemExit) as info, contextlib.redirect_stderr(io.StringIO()):
        cli.main(["--root", str(tmp_path), "--list", str(tmp_path), "--out", str(tmp_path / "o"), *flags])
    assert info.value.code == 2


def test_help_describes_the_outputs():
    out = io.StringIO()
    with pytest.raises(SystemExit) as info, contextlib.redirect_stdout(out):
        cli.main(["--help"])
    assert info.value.code == 0
    assert "S<S>_lmdb" in out.getvalue() and "report.txt" in out.getvalue()


def test_progress_line_shows_rate_and_eta(small_set, tmp_path):
    code, _, err = run("--root", small_set / "images", "--list", small_set / "list.txt", "--out", tmp_path / "o",
                       "--scales", 48, "--workers", 1)
    assert code == 0 and re.search(r"6/6 100% +[\d.]+ img/s ETA 0:00:00", err)


# --- Atomic outputs ----------------------------------------------------------------------------

def lmdb_entries(out):
    return sorted(name for name in os.listdir(out) if "_lmdb" in name)


def test_rerun_replaces_the_previous_output_whole(small_set, tmp_path, caffe_pb2):
    build_small(small_set, tmp_path / "out")
    (tmp_path / "two.txt").write_text("cls0/img 0.jpg 0\ncls1/img 1.jpg 1\n")
    code, _, err = run("--root", small_set / "images", "--list", tmp_path / "two.txt", "--out", tmp_path / "out",
                       "--scales", 48, 72, "--workers", 1, "--no-progress")
    assert code == 0, err
    assert len(keys_of(tmp_path / "out", caffe_pb2)) == 2
    assert lmdb_entries(tmp_path / "out") == ["S48_lmdb", "S72_lmdb"]  # no .tmp- or .old- left
    assert load_stats(tmp_path / "out" / "stats.json").num_images == 2


def dead_pid():
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        pid += 1


def test_leftovers_of_an_interrupted_run_are_removed(small_set, tmp_path):
    leftover = tmp_path / "out" / f"S48_lmdb.tmp-{dead_pid()}"
    leftover.mkdir(parents=True)
    (leftover / "data.mdb").write_bytes(b"half")
    stdout = build_small(small_set, tmp_path / "out")
    assert not leftover.exists() and "Removed leftovers" in stdout
    assert lmdb_entries(tmp_path / "out") == ["S48_lmdb", "S72_lmdb"]


def test_output_being_written_by_a_live_run_is_left_alone(small_set, tmp_path):
    busy = tmp_path / "out" / "S48_lmdb.tmp-1"  # pid 1 is alive
    busy.mkdir(parents=True)
    code, _, err = run("--root", small_set / "images", "--list", small_set / "list.txt", "--out", tmp_path / "out",
                       "--scales", 48, "--workers", 1, "--no-progress")
    assert code == 1 and "another run (pid 1)" in err and busy.exists()


def test_interrupted_run_publishes_nothing(small_set, tmp_path, monkeypatch):
    build_small(small_set, tmp_path / "out")
    before = {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in os.listdir(tmp_path / "out")}
    original = build_module._convert_task
    calls = []

    def interrupted(task):  # Ctrl-C while the fourth image converts (in this process: --workers 1)
        calls.append(task)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(task)

    monkeypatch.setattr(build_module, "_convert_task", interrupted)
    code, _, err = run("--root", small_set / "images", "--list", small_set / "list.txt", "--out", tmp_path / "out",
                       "--scales", 48, 72, "--workers", 1, "--no-progress")
    assert code == 130 and "nothing was published" in err
    after = {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in os.listdir(tmp_path / "out")}
    assert after == before  # the previous complete output, untouched; no temporaries


def test_interrupt_while_workers_are_busy_stops_them_and_publishes_nothing(small_set, tmp_path, monkeypatch):
    original = build_module._datum_bytes
    calls = []

    def interrupted(*args):  # Ctrl-C in the writer while two worker processes convert
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(build_module, "_datum_bytes", interrupted)
    # More tasks than may be in flight: the pool's feeder is blocked when the interrupt comes.
    monkeypatch.setattr(build_module, "MAX_IN_FLIGHT_PER_WORKER", 1)
    (tmp_path / "many.txt").write_text((small_set / "list.txt").read_text() * 10)
    code, _, err = run("--root", small_set / "images", "--list", tmp_path / "many.txt", "--out", tmp_path / "out",
                       "--scales", 48, "--workers", 2, "--no-progress")
    assert code == 130 and "nothing was published" in err
    assert os.listdir(tmp_path / "out") == []


def test_unwritable_target_is_a_one_line_error(small_set, tmp_path):
    (tmp_path / "a-file").write_text("")
    code, out, err = run("--root", small_set / "images", "--list", small_set / "list.txt",
                         "--out", tmp_path / "a-file" / "out", "--scales", 48, "--workers", 1, "--no-progress")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "cannot create the output directory" in err


def test_disk_full_is_a_one_line_error_and_leaves_the_previous_output(small_set, tmp_path):
    out = tmp_path / "out"
    build_small(small_set, out)
    before = {name: (out / name).stat().st_mtime_ns for name in os.listdir(out)}
    limit = 40_000  # bytes per file: the S=360 LMDB outgrows it, as on a full disk

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [str(a) for a in (sys.executable, "-m", "data_prep", "--root", small_set / "images",
                          "--list", small_set / "list.txt", "--out", out, "--scales", 48, 360,
                          "--workers", 1, "--no-progress")],
        preexec_fn=small_disk, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert result.returncode == 1
    # LMDB reports the short write as an I/O error; the message says how much room is left.
    assert result.stderr.count("\n") == 1 and "failed: mdb_txn_commit" in result.stderr
    assert "GB free there" in result.stderr and "temporary outputs removed" in result.stderr
    after = {name: (out / name).stat().st_mtime_ns for name in os.listdir(out)}
    assert after == before


def test_command_line_runs_load_caffe_pb2_without_pycaffe(caffe_pb2):
    code = ("import sys; from data_prep.caffe_proto import load_caffe_pb2; pb = load_caffe_pb2(standalone=True);"
            " print(pb.Datum(label=7, encoded=True).SerializeToString().hex(), 'caffe' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert result.returncode == 0, result.stderr
    datum_hex, caffe_imported = result.stdout.split()
    assert caffe_imported == "False"  # pycaffe (libcaffe, scikit-image) was not loaded
    assert bytes.fromhex(datum_hex) == caffe_pb2.Datum(label=7, encoded=True).SerializeToString()


def test_only_the_vgg_data_process_limits_openblas_threads():
    """The one-thread OpenBLAS default belongs to the vgg-data process. Importing the library
    must leave the environment alone: it used to set OPENBLAS_NUM_THREADS on import, so every
    later child of an importing process (a `caffe` run, a benchmark) got one BLAS thread."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    show = "import os, {module}; print(os.environ.get('OPENBLAS_NUM_THREADS'))"

    def setting_after_import(module, environment):
        result = subprocess.run([sys.executable, "-c", show.format(module=module)], capture_output=True,
                                text=True, env=environment, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert setting_after_import("data_prep.cli", env) == "None"
    assert setting_after_import("data_prep.build", env) == "None"
    assert setting_after_import("data_prep.__main__", env) == "1"
    assert setting_after_import("data_prep.__main__", {**env, "OPENBLAS_NUM_THREADS": "3"}) == "3"


def test_workers_start_when_the_caller_has_used_opencvs_threads(small_set, tmp_path):
    """OpenCV's thread pool does not survive fork(): workers forked from a process whose pool
    is running used to hang forever in cv2.setNumThreads. In a child process, so that a
    regression fails on the timeout instead of hanging the suite."""
    code = ("import sys, cv2, numpy as np\n"
            "from data_prep import cli\n"
            "cv2.setNumThreads(2)\n"
            "big = np.random.default_rng(0).integers(0, 256, (2000, 3000, 3), dtype=np.uint8)\n"
            "cv2.resize(big, (300, 200), interpolation=cv2.INTER_AREA)\n"
            "cv2.GaussianBlur(big, (5, 5), 2)\n"
            "code = cli.main(sys.argv[1:])\n"
            "assert cv2.getNumThreads() == 2, cv2.getNumThreads()  # the caller's setting is back\n"
            "sys.exit(code)\n")
    args = ["--root", small_set / "images", "--list", small_set / "list.txt", "--out", tmp_path / "out",
            "--scales", 48, "--workers", 2, "--no-progress"]
    try:
        result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                                timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("vgg-data's workers hung after the caller used OpenCV's thread pool")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "S48_lmdb").is_dir()


def test_two_workers_write_exactly_what_one_writes(small_set, tmp_path, caffe_pb2, monkeypatch):
    """Chunks go round-robin to the workers and come back in order: the LMDB records (keys,
    bytes, labels) and the statistics are those of a one-process run, over many rounds."""
    (tmp_path / "many.txt").write_text((small_set / "list.txt").read_text() * 9)
    monkeypatch.setattr(build_module, "CHUNK", 4)
    monkeypatch.setattr(build_module, "MAX_IN_FLIGHT_PER_WORKER", 4)  # one chunk per worker at a time
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        code, _, err = run("--root", small_set / "images", "--list", tmp_path / "many.txt", "--out", out,
                           "--scales", 48, 72, "--workers", workers, "--no-progress")
        assert code == 0, err
        outputs[workers] = ({s: [(k, d.SerializeToString()) for k, d in read_lmdb(out / f"S{s}_lmdb", caffe_pb2)]
                             for s in (48, 72)}, json.loads((out / "stats.json").read_text()))
    assert len(outputs[1][0][48]) == 54
    assert outputs[2] == outputs[1]


def test_a_worker_that_dies_is_a_one_line_error_and_publishes_nothing(small_set, tmp_path, monkeypatch):
    """A decoder crash kills a worker process (here: os._exit in the conversion): the run stops
    with the image named instead of waiting forever for its result."""
    original = build_module._convert_task

    def crashing(task):
        if task[1].endswith("img 3.jpg"):
            os._exit(3)
        return original(task)

    monkeypatch.setattr(build_module, "_convert_task", crashing)
    code, _, err = run("--root", small_set / "images", "--list", small_set / "list.txt", "--out", tmp_path / "out",
                       "--scales", 48, "--workers", 2, "--no-progress")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "died (exit code 3) while converting" in err and "img " in err
    assert os.listdir(tmp_path / "out") == []
