"""Fixtures of the evaluation tests: real photographs (the ones scikit-image ships, a
dependency of pycaffe) under an image root with a Caffe list file."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from eval_fixtures import randomize, tiny_net_text

# (file in skimage/data, label): real photographs of several sizes and aspect ratios.
PHOTOS = (("chelsea.png", 3), ("coffee.png", 1), ("rocket.jpg", 4), ("astronaut.png", 0))


def skimage_data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-image (pycaffe's dependency, which ships the test photographs) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


@pytest.fixture(scope="session")
def photo_root(tmp_path_factory) -> Path:
    """An image root with the photographs under a sub-folder, and a file that is not an image."""
    root = tmp_path_factory.mktemp("images")
    (root / "val").mkdir()
    for name, _ in PHOTOS:
        shutil.copy(skimage_data_dir() / name, root / "val" / name)
    (root / "val" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


@pytest.fixture(scope="session")
def photo_list(photo_root) -> Path:
    """The photographs, a corrupt file and a missing file, as a Caffe list."""
    lines = [f"val/{name} {label}" for name, label in PHOTOS[:2]]
    lines += ["val/corrupt.jpg 2", "val/missing.jpg 2"]
    lines += [f"val/{name} {label}" for name, label in PHOTOS[2:]]
    path = photo_root / "list.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def caffe():
    import os

    os.environ.setdefault("GLOG_minloglevel", "2")
    caffe = pytest.importorskip("caffe")
    caffe.set_mode_cpu()
    return caffe


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, caffe):
    """models/tiny/{deploy,deploy_dense}.prototxt and trained-looking weights saved by Caffe."""
    def make(kernel: int):
        folder = tmp_path_factory.mktemp(f"tiny_k{kernel}") / "tiny"
        folder.mkdir()
        (folder / "deploy.prototxt").write_text(tiny_net_text(dense=False, kernel=kernel))
        (folder / "deploy_dense.prototxt").write_text(tiny_net_text(dense=True, kernel=kernel))
        net = caffe.Net(str(folder / "deploy.prototxt"), caffe.TEST)
        randomize(net)
        net.save(str(folder / "tiny.caffemodel"))
        return folder
    return make
