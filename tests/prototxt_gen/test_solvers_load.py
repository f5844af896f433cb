"""Every solver loads in Caffe against small LMDBs made here, and a generated stage trains."""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import caffe

from prototxt_gen import generate, table

from netgen_helpers import TINY, make_dataset

REPO = Path(__file__).resolve().parents[2]

caffe.set_mode_cpu()


def solver_paths(profile, configs):
    return [generate.solver_path(profile, c, r) for c in configs for r in table.regimes(profile)]


def test_every_tiny_profile_solver_loads_and_its_nets_have_the_regimes_data(tiny_root, monkeypatch):
    monkeypatch.chdir(tiny_root)
    paths = solver_paths(TINY, table.CONFIGS.values())
    assert len(paths) == 3 * len(table.CONFIGS)
    for path in paths:
        solver = caffe.get_solver(path)
        assert solver.net.blobs["data"].data.shape == (4, 3, 32, 32), path
        assert solver.test_nets[0].blobs["data"].data.shape == (4, 3, 32, 32), path
        assert set(solver.test_nets[0].outputs) == {"accuracy_top1", "accuracy_top5", "loss"}
        assert "accuracy_top1" not in solver.net.outputs
        del solver


def test_a_generated_stage_trains(tiny_root, monkeypatch):
    """One SGD step of D's jittered stage: the loss is finite and the weights move."""
    monkeypatch.chdir(tiny_root)
    caffe.set_random_seed(1)
    solver = caffe.get_solver(generate.solver_path(TINY, table.CONFIGS["D"], table.regimes(TINY)[2]))
    before = solver.net.params["conv1_1"][0].data.copy()
    solver.step(1)
    assert np.isfinite(solver.net.blobs["loss"].data).all()
    assert not np.array_equal(before, solver.net.params["conv1_1"][0].data)
    assert solver.iter == 1


@pytest.fixture(scope="module")
def paper_root(tmp_path_factory):
    """The committed models/ and solvers/ with two-image LMDBs where `make data` would put them."""
    root = tmp_path_factory.mktemp("paper")
    make_dataset(root, table.PAPER, 2)
    shutil.copytree(REPO / "solvers", root / "solvers", ignore=shutil.ignore_patterns("mini"))
    for name in table.CONFIGS:
        shutil.copytree(REPO / "models" / name, root / "models" / name,
                        ignore=shutil.ignore_patterns("*.caffemodel", "*.solverstate"))
    return root


@pytest.mark.parametrize("name", list(table.CONFIGS))
def test_every_committed_solver_loads_as_is(paper_root, monkeypatch, name):
    """The committed files, unchanged, under caffe.get_solver (full size: weights are allocated,
    activations are not until a forward pass). Every config's solvers also load in the tiny
    profile above; at full size each config costs ~6 s of filler draws, so D always runs and
    the others with VGG_FULL_SOLVER_TESTS=1."""
    if name != "D" and not os.environ.get("VGG_FULL_SOLVER_TESTS"):
        pytest.skip("full-size solvers beyond D: set VGG_FULL_SOLVER_TESTS=1")
    monkeypatch.chdir(paper_root)
    for path in solver_paths(table.PAPER, [table.CONFIGS[name]]):
        solver = caffe.get_solver(path)
        assert solver.net.blobs["data"].data.shape == (64, 3, 224, 224)
        assert solver.test_nets[0].blobs["data"].data.shape == (50, 3, 224, 224)
        assert sum(b.count for blobs in solver.net.params.values() for b in blobs) == \
            table.param_count(table.CONFIGS[name])
        del solver
