"""The committed deploy nets as Caffe builds them: Table 2's parameter counts, the authors' D and E
layer for layer, and Sec. 3.2's dense net (output map sizes, fc -> conv equivalence)."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import caffe
from caffe.proto import caffe_pb2
from google.protobuf import text_format

from prototxt_gen import surgery, table

REPO = Path(__file__).resolve().parents[2]
EXACT_PARAMS = {"A": 132_863_336, "A-LRN": 132_863_336, "B": 133_047_848, "C": 133_638_952,
                "D": 138_357_544, "E": 143_667_240}
DENSE_SIZES = (224, 256, 384)

caffe.set_mode_cpu()


def count(net) -> int:
    return sum(blob.data.size for blobs in net.params.values() for blob in blobs)


@pytest.fixture(scope="module")
def built():
    """Each committed deploy and dense deploy net built once: parameter counts and dense map shapes."""
    results = {}
    for name in table.CONFIGS:
        deploy = caffe.Net(str(REPO / f"models/{name}/deploy.prototxt"), caffe.TEST)
        deploy_count, deploy_out = count(deploy), deploy.blobs["prob"].data.shape
        del deploy
        dense = caffe.Net(str(REPO / f"models/{name}/deploy_dense.prototxt"), caffe.TEST)
        shapes = {}
        for size in DENSE_SIZES:
            dense.blobs["data"].reshape(1, 3, size, size)
            dense.reshape()
            shapes[size] = (dense.blobs["fc8"].data.shape, dense.blobs["prob"].data.shape)
        results[name] = dict(deploy=deploy_count, dense=count(dense), shapes=shapes, deploy_out=deploy_out)
        del dense
    return results


@pytest.mark.parametrize("name", list(table.CONFIGS))
def test_parameter_counts_as_caffe_builds_them(built, name):
    got = built[name]
    assert got["deploy"] == got["dense"] == table.param_count(table.CONFIGS[name])
    if name in EXACT_PARAMS:
        assert got["deploy"] == EXACT_PARAMS[name]
    assert got["deploy_out"] == (10, 1000)


@pytest.mark.parametrize("name", list(table.CONFIGS))
def test_dense_score_map_sizes(built, name):
    shapes = built[name]["shapes"]
    assert shapes[224] == ((1, 1000, 1, 1), (1, 1000, 1, 1))
    assert shapes[256] == ((1, 1000, 2, 2), (1, 1000, 2, 2))
    assert shapes[384] == ((1, 1000, 6, 6), (1, 1000, 6, 6))
    # and what table.py predicts: pool5 map minus fc6's kernel, plus one
    for size in DENSE_SIZES:
        side = table.feature_map_sizes(table.CONFIGS[name], size)[-1] - table.fc6_kernel(table.CONFIGS[name]) + 1
        assert shapes[size][0][2:] == (side, side)


def test_fc_weights_reshaped_into_the_dense_net_give_the_same_scores():
    rng = np.random.default_rng(0)
    fc = caffe.Net(str(REPO / "models/D/deploy.prototxt"), caffe.TEST)
    fc.blobs["data"].reshape(1, 3, 224, 224)
    fc.reshape()
    for blobs in fc.params.values():  # He-scaled random weights keep the scores finite and varied
        weights, bias = blobs[0].data, blobs[1].data
        weights[...] = rng.standard_normal(weights.shape, dtype=np.float32) * np.sqrt(2.0 / weights[0].size)
        bias[...] = rng.uniform(-0.1, 0.1, bias.shape)
    image = rng.uniform(-120, 120, (1, 3, 224, 224)).astype(np.float32)
    fc.blobs["data"].data[...] = image
    scores = fc.forward()["prob"].copy(), fc.blobs["fc8"].data.copy()
    params = surgery.params_of(fc)
    del fc
    dense = caffe.Net(str(REPO / "models/D/deploy_dense.prototxt"), caffe.TEST)
    copied = surgery.transplant(params, dense)
    assert copied[-3:] == ["fc6", "fc7", "fc8"]
    assert dense.params["fc6"][0].data.shape == (4096, 512, 7, 7)
    dense.blobs["data"].data[...] = image
    dense.forward()
    fc8 = dense.blobs["fc8"].data.reshape(1, 1000)
    assert np.abs(scores[1]).max() > 1e-3 and np.std(scores[1]) > 0
    np.testing.assert_allclose(fc8, scores[1], rtol=1e-4, atol=1e-4 * np.abs(scores[1]).max())
    np.testing.assert_allclose(dense.blobs["prob"].data.reshape(1, 1000), scores[0], rtol=1e-4, atol=1e-7)


def _upgrade_tool() -> str:
    found = shutil.which("upgrade_net_proto_text") or str(Path(sys.executable).parent / "upgrade_net_proto_text")
    assert Path(found).is_file(), "upgrade_net_proto_text not found beside the venv's python"
    return found


@pytest.mark.parametrize("name,reference", [("D", "VGG_ILSVRC_16_layers_deploy.prototxt"),
                                            ("E", "VGG_ILSVRC_19_layers_deploy.prototxt")])
def test_deploy_is_the_authors_layer_for_layer(reference_dir, tmp_path, name, reference):
    upgraded = tmp_path / reference
    subprocess.run([_upgrade_tool(), str(reference_dir / reference), str(upgraded)], check=True,
                   capture_output=True)
    theirs, ours = caffe_pb2.NetParameter(), caffe_pb2.NetParameter()
    text_format.Parse(upgraded.read_text(), theirs)
    text_format.Parse((REPO / f"models/{name}/deploy.prototxt").read_text(), ours)
    assert [layer.name for layer in ours.layer] == [layer.name for layer in theirs.layer]
    for mine, authors in zip(ours.layer, theirs.layer):
        # the whole LayerParameter: type, bottoms, tops and every parameter
        assert mine == authors, f"{mine.name}:\nours:\n{mine}\nauthors':\n{authors}"
