"""Caffe's protobuf messages (Datum, BlobProto) for the data preparation of Sec. 3.1.

`from caffe.proto import caffe_pb2` first runs pycaffe's package __init__, which loads
libcaffe and scikit-image: about a second of CPU, as much as converting 400 images. A
command-line run, where nothing else in the process imports caffe, loads the generated
caffe_pb2.py by itself instead (same file, same module name). Anywhere else the normal
import is used, so that the caffe package stays whole for other code in the process.
"""
from __future__ import annotations

import importlib.util
import os
import sys

MODULE = "caffe.proto.caffe_pb2"


class CaffeMissing(RuntimeError):
    pass


def _standalone():
    spec = importlib.util.find_spec("caffe")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "proto", "caffe_pb2.py")
    if not os.path.isfile(path):
        return None
    module_spec = importlib.util.spec_from_file_location(MODULE, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[MODULE] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[MODULE]
        raise
    return module


def load_caffe_pb2(standalone: bool = False):
    """The caffe_pb2 module; `standalone` only where no other code will import caffe."""
    if MODULE in sys.modules:
        return sys.modules[MODULE]
    if standalone and "caffe" not in sys.modules:
        module = _standalone()
        if module is not None:
            return module
    try:
        from caffe.proto import caffe_pb2
    except ImportError as exc:
        raise CaffeMissing(f"Caffe's Python module is not importable ({exc}); run `make setup`") from None
    return caffe_pb2
