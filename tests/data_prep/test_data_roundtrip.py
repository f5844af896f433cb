"""Acceptance: records read back through Caffe's own Data layer (pycaffe, TEST phase, no crop,
batch 1, stock transform_param) have smallest side exactly S, the right label, and pixels
within JPEG tolerance of decoding + rescaling the source directly."""
import contextlib
import io

import cv2
import numpy as np
import pytest

from data_prep import cli
from data_prep_helpers import direct_rescale, jpeg, photo, read_lmdb, within_jpeg_tolerance, write

SCALES = (72, 112)
# path -> (how to make it, label): sizes and aspect ratios of every kind, JPEG and PNG.
SOURCES = {
    "jpeg/landscape.jpg": (lambda: jpeg(photo(21, 150, 200)), 3),
    "jpeg/portrait.jpg": (lambda: jpeg(photo(22, 230, 153)), 0),
    "jpeg/panorama.jpg": (lambda: jpeg(photo(23, 90, 320)), 7),
    "jpeg/at_72.jpg": (lambda: jpeg(photo(24, 72, 100)), 1),       # stored byte for byte at S=72
    "jpeg/small.jpg": (lambda: jpeg(photo(25, 50, 61)), 2),        # upscaled
    "png/square.png": (lambda: cv2.imencode(".png", photo(26, 131, 131))[1].tobytes(), 5),
}


@pytest.fixture(scope="module")
def caffe():
    caffe = pytest.importorskip("caffe", reason="pycaffe is not built (make setup)")
    caffe.set_mode_cpu()
    return caffe


@pytest.fixture(scope="module")
def built(tmp_path_factory, caffe):
    base = tmp_path_factory.mktemp("roundtrip")
    for path, (make, _) in SOURCES.items():
        write(base / "images" / path, make())
    (base / "list.txt").write_text("".join(f"{path} {label}\n" for path, (_, label) in SOURCES.items()))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = cli.main(["--root", str(base / "images"), "--list", str(base / "list.txt"), "--out", str(base / "out"),
                         "--scales", *map(str, SCALES), "--no-progress"])
    assert code == 0, err.getvalue()
    return base


def data_layer_net(caffe, lmdb_path, proto_path):
    """A net of one stock Data layer: TEST phase, batch 1, no crop, no mean."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    net = caffe_pb2.NetParameter(name="roundtrip")
    layer = net.layer.add(name="data", type="Data", top=["data", "label"])
    layer.include.add(phase=caffe_pb2.TEST)
    layer.data_param.source = str(lmdb_path)
    layer.data_param.backend = caffe_pb2.DataParameter.LMDB
    layer.data_param.batch_size = 1
    proto_path.write_text(text_format.MessageToString(net))
    return caffe.Net(str(proto_path), caffe.TEST)


@pytest.mark.parametrize("side", SCALES)
def test_every_record_read_by_caffes_data_layer_matches_a_direct_rescale(built, caffe, side, tmp_path):
    from caffe.proto import caffe_pb2

    lmdb_path = built / "out" / f"S{side}_lmdb"
    keys = [key for key, _ in read_lmdb(lmdb_path, caffe_pb2)]
    assert len(keys) == len(SOURCES)
    net = data_layer_net(caffe, lmdb_path, tmp_path / "net.prototxt")
    seen = set()
    for key in keys:  # the Data layer reads in key order
        net.forward()
        path = key.split("_", 1)[1]
        data = net.blobs["data"].data[0]                      # C x H x W, float, BGR 0-255
        assert data.shape[0] == 3 and min(data.shape[1:]) == side
        assert int(net.blobs["label"].data[0]) == SOURCES[path][1]
        image = np.rint(data.transpose(1, 2, 0)).astype(np.uint8)
        source = cv2.imread(str(built / "images" / path), cv2.IMREAD_COLOR)
        assert within_jpeg_tolerance(image, direct_rescale(source, side)), path
        seen.add(path)
    assert seen == set(SOURCES)
