"""Fixtures of the data_prep tests; helpers are in data_prep_helpers.py and data_prep_images.py."""
import pytest


@pytest.fixture(scope="session")
def caffe_pb2():
    return pytest.importorskip("caffe.proto.caffe_pb2", reason="pycaffe is not built (make setup)")
