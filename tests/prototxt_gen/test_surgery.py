"""prototxt_gen.surgery: reading caffemodels in every encoding, and the shape rule of transplant."""
import numpy as np
import pytest
from caffe.proto import caffe_pb2
from google.protobuf.internal import encoder

from prototxt_gen.surgery import SurgeryError, fits, read_caffemodel


def _write(tmp_path, net):
    path = tmp_path / "w.caffemodel"
    path.write_bytes(net.SerializeToString())
    return path


def test_reads_current_and_v1_layers(tmp_path):
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(16, 2, 3, 3)).astype(np.float32)
    net = caffe_pb2.NetParameter()
    layer = net.layer.add(name="conv1_1")
    blob = layer.blobs.add()
    blob.shape.dim.extend(weights.shape)
    blob.data.extend(weights.ravel().tolist())
    layer.blobs.add(shape=caffe_pb2.BlobShape(dim=[16]), data=list(range(16)))
    # The authors' caffemodels are V1: `layers`, blobs shaped (num, channels, height, width).
    old = net.layers.add(name="fc8")
    old.blobs.add(num=1, channels=1, height=3, width=4, data=list(range(12)))
    params = read_caffemodel(_write(tmp_path, net))
    np.testing.assert_array_equal(params["conv1_1"][0], weights)
    np.testing.assert_array_equal(params["conv1_1"][1], np.arange(16, dtype=np.float32))
    assert params["fc8"][0].shape == (1, 1, 3, 4)
    np.testing.assert_array_equal(params["fc8"][0].ravel(), np.arange(12))
    params["fc8"][0][0, 0, 0, 0] = 7  # arrays are writable copies


def test_reads_unpacked_and_double_data(tmp_path):
    # Caffe writes `data` packed; a hand-made file may repeat the tag per float instead.
    values = [0.5, -1.25, 3.0]
    blob_bytes = b"".join(encoder.TagBytes(5, 5) + np.float32(v).tobytes() for v in values)
    blob = caffe_pb2.BlobProto()
    blob.MergeFromString(blob_bytes)
    blob.shape.dim.append(3)
    net = caffe_pb2.NetParameter()
    net.layer.add(name="a").blobs.append(blob)
    net.layer.add(name="b").blobs.add(shape=caffe_pb2.BlobShape(dim=[2]), double_data=[1.5, 2.5])
    params = read_caffemodel(_write(tmp_path, net))
    np.testing.assert_array_equal(params["a"][0], np.array(values, dtype=np.float32))
    np.testing.assert_array_equal(params["b"][0], np.array([1.5, 2.5], dtype=np.float32))


def test_not_a_caffemodel(tmp_path):
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(b"\xff\xff\xff\xff not protobuf")
    with pytest.raises(SurgeryError, match="not a caffemodel"):
        read_caffemodel(bad)
    with pytest.raises(SurgeryError, match="not found"):
        read_caffemodel(tmp_path / "missing.caffemodel")


def test_fits_shape_rule():
    assert fits((4096, 25088), (4096, 512, 7, 7))      # fc6 -> 7x7 conv
    assert fits((1, 1, 4096, 4096), (4096, 4096, 1, 1))  # V1 fc7 -> 1x1 conv
    assert fits((1, 1, 1, 1000), (1000,))               # V1 bias
    assert not fits((4096, 25088), (512, 4096, 7, 7))   # same count, other output dim
    assert not fits((10, 256), (10, 255))
