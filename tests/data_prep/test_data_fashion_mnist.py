"""Fashion-MNIST IDX files to PNG roots + list files, from Debian's package or any path."""
import contextlib
import gzip
import io
import os
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_prep import cli, fashion_mnist
from data_prep_helpers import read_lmdb

DEBIAN = Path(fashion_mnist.DEBIAN_DIR)


def idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_set(directory: Path, counts=(12, 5), gz=True, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    data = {}
    for (split, prefix), count in zip(fashion_mnist.SPLITS.items(), counts):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count, dtype=np.uint8)
        for stem, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
            if gz:
                with gzip.open(directory / (stem + ".gz"), "wb") as f:
                    f.write(idx(array))
            else:
                (directory / stem).write_bytes(idx(array))
        data[split] = (images, labels)
    return data


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = fashion_mnist.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_become_pngs_and_list_files(tmp_path, gz):
    data = write_idx_set(tmp_path / "idx", gz=gz)
    code, out, err = run("--source", tmp_path / "idx", "--out", tmp_path / "fm")
    assert code == 0, err
    folders = fashion_mnist.folder_names()
    assert folders == sorted(folders)  # the trees' sorted folders give the labels too
    for split, (images, labels) in data.items():
        lines = (tmp_path / "fm" / f"{split}.txt").read_text().splitlines()
        assert len(lines) == len(labels)
        for line, image, label in zip(lines, images, labels):
            path, text = line.rsplit(" ", 1)
            assert int(text) == label and path.startswith(folders[label] + "/")
            stored = cv2.imread(str(tmp_path / "fm" / split / path), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(stored, image)
    classes = (tmp_path / "fm" / "classes.txt").read_text().splitlines()
    assert classes[0] == "0_tshirt_top T-shirt/top" and classes[9] == "9_ankle_boot Ankle boot"
    assert f"ROOT={tmp_path / 'fm' / 'train'}" in out


def test_limit_takes_the_first_images_of_each_split(tmp_path):
    write_idx_set(tmp_path / "idx")
    assert run("--source", tmp_path / "idx", "--out", tmp_path / "fm", "--limit", 3)[0] == 0
    assert [len((tmp_path / "fm" / f"{s}.txt").read_text().splitlines()) for s in ("train", "test")] == [3, 3]


@pytest.mark.parametrize("damage,message", [
    (lambda raw: b"\x00\x00\x0d\x03" + raw[4:], "IDX type 0x0d"),   # floats, not bytes
    (lambda raw: raw[:-10], "data bytes"),                          # cut short
    (lambda raw: b"PK\x03\x04" + raw[4:], "not an IDX file")])
def test_damaged_idx_file_is_a_one_line_error(tmp_path, damage, message):
    write_idx_set(tmp_path / "idx", gz=False)
    path = tmp_path / "idx" / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    code, _, err = run("--source", tmp_path / "idx", "--out", tmp_path / "fm")
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "fm").exists()


def test_label_count_mismatch_is_an_error(tmp_path):
    write_idx_set(tmp_path / "idx", gz=False)
    (tmp_path / "idx" / "t10k-labels-idx1-ubyte").write_bytes(idx(np.zeros(4, np.uint8)))
    code, _, err = run("--source", tmp_path / "idx", "--out", tmp_path / "fm")
    assert code == 1 and "5 images but" in err


def test_missing_files_say_how_to_install_them(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", str(tmp_path / "nowhere"))
    code, _, err = run("--source", tmp_path / "nowhere", "--out", tmp_path / "fm")
    assert code == 1 and "apt-get install dataset-fashion-mnist" in err


def test_import_then_vgg_data_on_the_class_tree(tmp_path, caffe_pb2):
    data = write_idx_set(tmp_path / "idx", counts=(8, 3))
    assert run("--source", tmp_path / "idx", "--out", tmp_path / "fm")[0] == 0
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(["--root", str(tmp_path / "fm" / "train"), "--list", str(tmp_path / "fm" / "train"),
                         "--out", str(tmp_path / "lmdb"), "--scales", "32", "--workers", "1", "--no-progress"])
    assert code == 0
    records = read_lmdb(tmp_path / "lmdb" / "S32_lmdb", caffe_pb2)
    images, labels = data["train"]
    assert len(records) == 8
    for key, datum in records:
        index = int(os.path.basename(key).split(".")[0])
        assert datum.label == labels[index] and (datum.height, datum.width, datum.channels) == (32, 32, 3)


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_debian_package_imports(tmp_path):
    code, out, err = run("--out", tmp_path / "fm", "--limit", 20)
    assert code == 0, err
    lines = (tmp_path / "fm" / "train.txt").read_text().splitlines()
    # The first Fashion-MNIST training image is an ankle boot (label 9).
    assert lines[0] == "9_ankle_boot/00000.png 9" and len(lines) == 20
    image = cv2.imread(str(tmp_path / "fm" / "train" / "9_ankle_boot" / "00000.png"), cv2.IMREAD_UNCHANGED)
    assert image.shape == (28, 28) and image.dtype == np.uint8 and image.max() > 200
