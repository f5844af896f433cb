"""vgg-init-from-a (Sec. 3.1): a deeper net's first weights from a trained net A."""
import shutil
from pathlib import Path

import numpy as np
import pytest

import caffe

from prototxt_gen import generate, init_from_a, surgery, table

from netgen_helpers import TINY, make_lmdb

REPO = Path(__file__).resolve().parents[2]

caffe.set_mode_cpu()


def trained_a(deploy: Path, out: Path, seed: int = 0) -> dict:
    """A stand-in for a trained net A: A's deploy net with random weights, saved as a caffemodel."""
    rng = np.random.default_rng(seed)
    net = caffe.Net(str(deploy), caffe.TEST)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = rng.standard_normal(blob.data.shape, dtype=np.float32) * 0.01 + 0.001
    net.save(str(out))
    params = surgery.params_of(net)
    del net
    return params


def test_full_size_d_from_a_loads_into_d_train_val_with_a_s_blobs_bit_identical(tmp_path, monkeypatch, capsys):
    a_model = tmp_path / "a.caffemodel"
    a = trained_a(REPO / "models/A/deploy.prototxt", a_model)
    out = tmp_path / "d_init.caffemodel"
    assert init_from_a.main(["D", "--a-weights", str(a_model), "--net", str(REPO / "models/D/train_val.prototxt"),
                             "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for layer in ("conv1_1", "conv2_1", "conv3_1", "conv3_2", "fc6", "fc7", "fc8"):
        assert f"copied  {layer:8} <- A's {layer}" in printed
    assert "fresh   conv1_2, conv2_2, conv3_3, conv4_1" in printed
    # D's committed train_val, as is, with its TEST LMDB where `make data` puts it
    make_lmdb(tmp_path / "data/ilsvrc12/val/S256_lmdb", 256, 1, 1000)
    (tmp_path / "models/D").mkdir(parents=True)
    shutil.copy(REPO / "models/D/train_val.prototxt", tmp_path / "models/D/train_val.prototxt")
    monkeypatch.chdir(tmp_path)
    d = caffe.Net("models/D/train_val.prototxt", str(out), caffe.TEST)
    for target, source in table.layers_from_a(table.CONFIGS["D"]).items():
        for got, want in zip(d.params[target], a[source]):
            assert got.data.tobytes() == want.astype(np.float32).reshape(got.data.shape).tobytes(), target
    for fresh in ("conv1_2", "conv4_1", "conv5_3"):  # drawn from the Gaussian filler, std 0.01
        weights = d.params[fresh][0].data
        assert abs(weights.std() - 0.01) < 5e-4 and abs(weights.mean()) < 1e-3
        assert not d.params[fresh][1].data.any()


@pytest.mark.parametrize("name", ["B", "C", "D", "E"])
def test_every_deeper_config_initialises_from_a(tiny_root, tmp_path, name):
    a_model = tmp_path / "a.caffemodel"
    a = trained_a(tiny_root / generate.deploy_path(TINY, table.CONFIGS["A"]), a_model)
    config = table.CONFIGS[name]
    out = tmp_path / "init.caffemodel"
    train_val = tiny_root / generate.train_val_path(TINY, config, table.regimes(TINY)[0])
    pairs = init_from_a.build(config, a_model, train_val, out, TINY, seed=3)
    assert pairs == list(table.layers_from_a(config, TINY).items())
    got = surgery.read_caffemodel(out)
    assert set(got) >= set(config.conv_names()) | set(table.FC_LAYERS)
    for target, source in pairs:
        for g, w in zip(got[target], a[source]):
            assert np.array_equal(g.reshape(w.shape), w)
    # same seed, same fresh layers: reproducible
    again = tmp_path / "again.caffemodel"
    init_from_a.build(config, a_model, train_val, again, TINY, seed=3)
    assert out.read_bytes() == again.read_bytes()


def test_refuses_what_cannot_be_initialised(tmp_path, capsys, tiny_root):
    with pytest.raises(SystemExit) as exit_:
        init_from_a.main(["A-LRN", "--a-weights", "x.caffemodel"])
    assert exit_.value.code == 2 and "not deeper than A" in capsys.readouterr().err
    assert init_from_a.main(["D", "--a-weights", str(tmp_path / "missing.caffemodel"),
                             "--out", str(tmp_path / "o.caffemodel")]) == 1
    assert "weights file not found" in capsys.readouterr().err
    # a tiny A into the full-size D: the shapes do not fit, and the message names the layer
    a_model = tmp_path / "tiny_a.caffemodel"
    trained_a(tiny_root / generate.deploy_path(TINY, table.CONFIGS["A"]), a_model)
    assert init_from_a.main(["D", "--a-weights", str(a_model), "--net", str(REPO / "models/D/train_val.prototxt"),
                             "--out", str(tmp_path / "o.caffemodel")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "conv1_1" in err[0] and "does not fit" in err[0]
    assert not (tmp_path / "o.caffemodel").exists()
