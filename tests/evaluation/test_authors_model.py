"""The authors' released D (VGG_ILSVRC_16_layers) through surgery and dense evaluation.

Their deploy file is V1 (`layers {`, `input_dim`) and so are their caffemodels (4-D legacy
blobs, fc weights (1, 1, out, in)). The test keeps every layer name and type of their file
and only divides the widths (a full D is 550 MB of weights), writes a V1 caffemodel under
those names, and runs the command line on it end to end.
"""
import csv

import numpy as np
import pytest

from eval_fixtures import randomize
from evaluation.cli import main
from evaluation.nets import instantiate, load_nets, resolve_model

D_DEPLOY = "VGG_ILSVRC_16_layers_deploy.prototxt"


def shrink_v1(text: str):
    """Their V1 net with conv widths / 16, fc6/fc7 32 wide and 10 classes; nothing else changed."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    net = text_format.Merge(text, caffe_pb2.NetParameter())
    v1 = caffe_pb2.V1LayerParameter
    for layer in net.layers:
        if layer.type == v1.CONVOLUTION:
            layer.convolution_param.num_output //= 16
        elif layer.type == v1.INNER_PRODUCT:
            layer.inner_product_param.num_output = 10 if layer.name == "fc8" else 32
    net.input_dim[0] = 1
    return net


def v1_caffemodel(net, path):
    """The net's weights as the authors stored theirs: V1 layers, 4-D legacy blob dims."""
    from caffe.proto import caffe_pb2

    model = caffe_pb2.NetParameter(name="VGG_ILSVRC_16_layers")
    for name, blobs in net.params.items():
        layer = model.layers.add(name=name)
        layer.type = caffe_pb2.V1LayerParameter.INNER_PRODUCT if name.startswith("fc") else \
            caffe_pb2.V1LayerParameter.CONVOLUTION
        for blob in blobs:
            data = blob.data
            dims = (1,) * (4 - data.ndim) + data.shape
            proto = layer.blobs.add(num=dims[0], channels=dims[1], height=dims[2], width=dims[3])
            proto.data.extend(data.reshape(-1).tolist())
    path.write_bytes(model.SerializeToString())


@pytest.fixture(scope="module")
def authors_d(reference_dir, tmp_path_factory, caffe):
    from google.protobuf import text_format

    work = tmp_path_factory.mktemp("authors_d")
    original = (reference_dir / D_DEPLOY).read_text()
    small = shrink_v1(original)
    (work / D_DEPLOY).write_text(text_format.MessageToString(small))
    spec = resolve_model(str(work / D_DEPLOY))
    fc = instantiate(spec.fc)
    randomize(fc, seed=1)
    v1_caffemodel(fc, work / "VGG_ILSVRC_16_layers.caffemodel")
    return dict(work=work, original=original, spec=spec, fc=fc)


def test_their_names_and_types_are_kept(authors_d):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    original = text_format.Merge(authors_d["original"], caffe_pb2.NetParameter())
    spec = authors_d["spec"]
    names = [layer.name for layer in original.layers]
    assert [layer.name for layer in spec.fc.layer if layer.type != "Input"] == names
    assert [layer.name for layer in spec.dense.layer if layer.type != "Input"] == names
    kinds = {layer.name: layer.type for layer in spec.dense.layer}
    assert kinds["fc6"] == kinds["fc7"] == kinds["fc8"] == "Convolution" and kinds["prob"] == "Softmax"
    kernels = {name: list(layer.convolution_param.kernel_size) for name, layer in
               ((layer.name, layer) for layer in spec.dense.layer) if name in ("fc6", "fc7", "fc8")}
    assert kernels == {"fc6": [7], "fc7": [1], "fc8": [1]}


def test_surgery_reshapes_their_fc_weights_into_convolutions(authors_d):
    work, fc = authors_d["work"], authors_d["fc"]
    nets = load_nets(authors_d["spec"], work / "VGG_ILSVRC_16_layers.caffemodel", need_dense=True, need_crop=True)
    assert nets.num_classes == 10
    assert nets.dense.params["fc6"][0].data.shape == (32, 32, 7, 7)
    np.testing.assert_array_equal(nets.dense.params["fc6"][0].data.reshape(32, -1), fc.params["fc6"][0].data)
    np.testing.assert_array_equal(nets.dense.params["fc8"][0].data[:, :, 0, 0], fc.params["fc8"][0].data)
    np.testing.assert_array_equal(nets.crop.params["conv5_3"][0].data, fc.params["conv5_3"][0].data)


def test_their_model_runs_end_to_end(authors_d, photo_root, photo_list, tmp_path, capsys):
    work = authors_d["work"]
    out = tmp_path / "out"
    args = ["run", "--model", str(work / D_DEPLOY), "--weights", str(work / "VGG_ILSVRC_16_layers.caffemodel"),
            "--root", str(photo_root), "--list", str(photo_list), "--out", str(out), "--scales", "256",
            "--train-scale", "[256;512]", "--protocol", "dense", "--quiet"]
    assert main(args) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["table"], r["models"], r["test_Q"], r["images_scored"], r["images_skipped"]) for r in rows] == \
        [("3", "VGG_ILSVRC_16_layers_deploy", "256", "4", "2")]
    assert 0 <= float(rows[0]["top5_error_pct"]) <= float(rows[0]["top1_error_pct"]) <= 100


def test_our_config_d_has_their_names_in_both_deploys(reference_dir, caffe):
    """MODEL=D (or vgg16) resolves to prototxt_gen's deploy pair, layer for layer the authors' D."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    spec = resolve_model("vgg16")
    theirs = text_format.Merge((reference_dir / D_DEPLOY).read_text(), caffe_pb2.NetParameter())
    names = [layer.name for layer in theirs.layers]
    assert spec.name == "D" and spec.crop == 224
    assert [layer.name for layer in spec.fc.layer if layer.type != "Input"] == names
    assert [layer.name for layer in spec.dense.layer if layer.type != "Input"] == names
    fc6 = next(layer for layer in spec.dense.layer if layer.name == "fc6")
    assert fc6.type == "Convolution" and list(fc6.convolution_param.kernel_size) == [7]
