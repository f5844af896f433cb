"""Dense testing inside `caffe test` gives the pycaffe dense path's numbers (single scale, no flip)."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation.caffe_test_net import write_caffe_test_net
from evaluation.images import read_image_list
from evaluation.metrics import topk_correct
from evaluation.nets import load_nets, resolve_model
from evaluation.protocols import evaluate_dense

MEAN = (103.939, 116.779, 123.68)
Q = 256


def caffe_tool(name):
    beside = Path(sys.executable).parent / name
    tool = str(beside) if beside.is_file() else shutil.which(name)
    if not tool:
        pytest.skip(f"Caffe's {name} tool is not installed")
    return tool


@pytest.fixture(scope="module")
def setup(tiny_model, photo_root, photo_list, tmp_path_factory):
    """Labels chosen from the pycaffe scores so top-1 and top-5 accuracies are not trivial."""
    folder = tiny_model(3)
    spec = resolve_model(str(folder / "deploy_dense.prototxt"))
    nets = load_nets(spec, folder / "tiny.caffemodel", need_dense=True, need_crop=False)
    photos = [item for item in read_image_list(photo_list) if "corrupt" not in item.path
              and "missing" not in item.path]
    scored = evaluate_dense(nets.dense, photos, photo_root, Q, MEAN, flip=False, show_progress=False)
    ranking = np.argsort(-scored.probs, axis=1)
    # ranks 1, 3, 7, 1: top-1 right for two images, top-5 right for three
    labels = [int(ranking[i, rank]) for i, rank in enumerate((0, 2, 6, 0))]
    work = tmp_path_factory.mktemp("caffe_test")
    (work / "list.txt").write_text("".join(f"{item.path} {label}\n" for item, label in zip(photos, labels)))
    subprocess.run([caffe_tool("convert_imageset"), str(photo_root) + "/", str(work / "list.txt"),
                    str(work / "lmdb")], check=True, capture_output=True)
    written = write_caffe_test_net(spec, Q, weights=folder / "tiny.caffemodel", source=str(work / "lmdb"),
                                   mean_bgr=MEAN, out_dir=work)
    return dict(written=written, scored=scored, labels=np.array(labels), count=len(photos))


def test_the_generated_net_reads_whole_images_and_averages_the_score_map(setup):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    written = setup["written"]
    assert written.net.name == "test_dense_Q256.prototxt"
    net = text_format.Merge(written.net.read_text(), caffe_pb2.NetParameter())
    data = net.layer[0]
    assert (data.type, data.data_param.batch_size, data.transform_param.crop_size) == ("Data", 1, 0)
    assert data.transform_param.smallest_side_test == Q and not data.transform_param.mirror
    assert [layer.name for layer in net.layer[-3:]] == ["fc8_mean", "accuracy_top1", "accuracy_top5"]
    assert net.layer[-3].pooling_param.global_pooling and net.layer[-3].pooling_param.pool == 1  # AVE
    fc6 = next(layer for layer in net.layer if layer.name == "fc6")
    assert fc6.type == "Convolution" and list(fc6.convolution_param.kernel_size) == [7]
    assert not any(layer.type in ("Input", "Softmax", "InnerProduct") for layer in net.layer)


def test_pycaffe_runs_of_the_test_net_match_the_dense_path_per_image(setup, caffe):
    written, scored = setup["written"], setup["scored"]
    net = caffe.Net(str(written.net), str(written.weights), caffe.TEST)
    for i in range(setup["count"]):
        net.forward()
        assert net.blobs["label"].data[0] == setup["labels"][i]
        scores = net.blobs["fc8_mean"].data.reshape(-1)
        posterior = np.exp(scores - scores.max())
        np.testing.assert_allclose(posterior / posterior.sum(), scored.probs[i], rtol=1e-4, atol=1e-7)


def test_caffe_test_reports_the_same_accuracy(setup):
    written, scored, labels = setup["written"], setup["scored"], setup["labels"]
    result = subprocess.run([caffe_tool("caffe"), "test", "-model", str(written.net), "-weights",
                             str(written.weights), "-iterations", str(setup["count"])],
                            capture_output=True, text=True, env={**os.environ, "GLOG_minloglevel": "0"})
    assert result.returncode == 0, result.stderr[-2000:]
    reported = dict(re.findall(r"\] (accuracy_top[15]) = ([0-9.e-]+)\s*$", result.stderr, re.M))
    top1 = topk_correct(scored.probs, labels, 1).mean()
    top5 = topk_correct(scored.probs, labels, 5).mean()
    assert (top1, top5) == (0.5, 0.75)
    assert float(reported["accuracy_top1"]) == pytest.approx(top1)
    assert float(reported["accuracy_top5"]) == pytest.approx(top5)
