"""The nets an evaluation runs, and trained weights loaded into them (Sec. 3.2).

Sec. 3.2: "the fully-connected layers are first converted to convolutional layers (the first
FC layer to a 7x7 conv. layer, the last two FC layers to 1x1 conv. layers)". Two nets serve
the protocols: the fully-convolutional deploy_dense (dense evaluation) and the FC deploy
(multi-crop; the authors' deploy form). Both are filled from one caffemodel by layer name
through prototxt_gen.surgery.transplant, which reshapes the fc weights into convolution
kernels, so a model trained by this project and the authors' released VGG_ILSVRC_16/19
caffemodels (V1 format, same layer names) load the same way, for any number of classes.

A model is named by its config (models/<CONFIG>/deploy_dense.prototxt and deploy.prototxt,
rendered by prototxt_gen when not generated yet) or by a prototxt path: a deploy_dense file
(its sibling deploy.prototxt, when present, serves multi-crop), or an FC deploy such as the
authors' released V1 files, whose dense form is derived here by the same conversion.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from prototxt_gen.surgery import SurgeryError, read_caffemodel, transplant

from .crops import CROP_SIZE

SCORE_LAYER = "fc8"


class ModelError(ValueError):
    pass


def _pb():
    from caffe.proto import caffe_pb2
    return caffe_pb2


def _parse_text(text: str, where: str):
    from google.protobuf import text_format

    param = _pb().NetParameter()
    try:
        text_format.Merge(text, param)
    except text_format.ParseError as exc:
        raise ModelError(f"{where}: not a Caffe net ({exc})") from None
    return param


def _upgrade_tool() -> str:
    beside = Path(sys.executable).parent / "upgrade_net_proto_text"
    tool = str(beside) if beside.is_file() else shutil.which("upgrade_net_proto_text")
    if not tool:
        raise ModelError("upgrade_net_proto_text (a Caffe tool) is needed to read an old-format net; "
                         "run `make setup`")
    return tool


def read_net_param(path: str | Path):
    """A prototxt as a current-format NetParameter; old V1 files (the authors' released
    deploys: `layers {`, `input_dim`) are upgraded with Caffe's own upgrade_net_proto_text."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ModelError(f"net definition not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: cannot read the net definition ({exc})") from None
    param = _parse_text(text, str(path))
    if len(param.layers) or len(param.input):
        with tempfile.TemporaryDirectory() as tmp:
            upgraded = Path(tmp) / "upgraded.prototxt"
            result = subprocess.run([_upgrade_tool(), str(path), str(upgraded)], capture_output=True, text=True)
            if result.returncode != 0 or not upgraded.is_file():
                last = (result.stderr.strip().splitlines() or ["failed"])[-1]
                raise ModelError(f"{path}: upgrading the old-format net failed ({last})")
            param = _parse_text(upgraded.read_text(), str(path))
    if not any(layer.name == SCORE_LAYER for layer in param.layer):
        raise ModelError(f"{path}: no layer named {SCORE_LAYER!r} (the class scores)")
    return param


def is_fully_convolutional(param) -> bool:
    return not any(layer.type == "InnerProduct" for layer in param.layer)


def _input_layer(param):
    inputs = [layer for layer in param.layer if layer.type == "Input"]
    if len(inputs) != 1 or list(inputs[0].top) != ["data"] or len(inputs[0].input_param.shape) != 1:
        raise ModelError(f"net {param.name!r}: expected one Input layer with the single top 'data'")
    return inputs[0]


def input_size(param) -> int:
    """The (square) input side of a deploy net: the training crop."""
    dims = list(_input_layer(param).input_param.shape[0].dim)
    return int(dims[-1]) if len(dims) == 4 and dims[-1] == dims[-2] else CROP_SIZE


def with_input_shape(param, shape: Sequence[int]):
    out = _pb().NetParameter()
    out.CopyFrom(param)
    dims = _input_layer(out).input_param.shape[0].dim
    del dims[:]
    dims.extend(int(d) for d in shape)
    return out


def with_num_classes(param, num_classes: int):
    """A copy whose score layer fc8 has num_classes outputs."""
    out = _pb().NetParameter()
    out.CopyFrom(param)
    for layer in out.layer:
        if layer.name == SCORE_LAYER:
            field = layer.convolution_param if layer.type == "Convolution" else layer.inner_product_param
            field.num_output = int(num_classes)
    return out


def instantiate(param):
    """A pycaffe Net (TEST phase) of a NetParameter."""
    import caffe

    fd, path = tempfile.mkstemp(prefix="evaluation-net-", suffix=".prototxt")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(str(param))
        return caffe.Net(path, caffe.TEST)
    finally:
        os.unlink(path)


def densify(param, crop: int | None = None):
    """The fully-convolutional form of an FC deploy net (Sec. 3.2), same layer names.

    The first InnerProduct becomes a convolution whose kernel covers its input map at the
    training crop (7x7 after five pools of a 224 crop), the following ones 1x1 convolutions.
    """
    crop = crop or input_size(param)
    fc_layers = [i for i, layer in enumerate(param.layer) if layer.type == "InnerProduct"]
    if not fc_layers:
        return param
    # The first fc layer's input size at the crop: run the net's layers before it.
    head = with_input_shape(param, (1, 3, crop, crop))
    del head.layer[fc_layers[0]:]
    first_bottom = param.layer[fc_layers[0]].bottom[0]
    kernel = instantiate(head).blobs[first_bottom].data.shape[2:]
    dense = with_input_shape(param, (1, 3, crop, crop))
    for n, index in enumerate(fc_layers):
        layer = dense.layer[index]
        fc = layer.inner_product_param
        if fc.transpose or fc.axis not in (1,):
            raise ModelError(f"layer {layer.name!r}: only InnerProduct on axis 1, untransposed, converts to a convolution")
        conv = _pb().ConvolutionParameter(num_output=fc.num_output, bias_term=fc.bias_term)
        if fc.HasField("weight_filler"):
            conv.weight_filler.CopyFrom(fc.weight_filler)
        if fc.HasField("bias_filler"):
            conv.bias_filler.CopyFrom(fc.bias_filler)
        kh, kw = kernel if n == 0 else (1, 1)
        if kh == kw:
            conv.kernel_size.append(int(kh))
        else:
            conv.kernel_h, conv.kernel_w = int(kh), int(kw)
        layer.ClearField("inner_product_param")
        layer.type = "Convolution"
        layer.convolution_param.CopyFrom(conv)
    return dense


def num_classes_of(weights: Mapping[str, Sequence[np.ndarray]]) -> int:
    if SCORE_LAYER not in weights:
        raise SurgeryError(f"layer {SCORE_LAYER!r} is missing from the source weights")
    shape = [d for d in weights[SCORE_LAYER][0].shape]
    while len(shape) > 1 and shape[0] == 1:  # V1 blobs are (1, 1, out, in)
        shape = shape[1:]
    return int(shape[0])


@dataclass(frozen=True)
class ModelSpec:
    """A model's two deploy nets (NetParameters) and the name the tables give it."""
    name: str
    dense: object
    fc: object | None  # None: multi-crop runs through the dense net (1x1 score map on a crop)
    crop: int
    source: str


def _name_from_path(path: Path) -> str:
    # models/<CONFIG>/deploy_dense.prototxt -> <CONFIG>; anything else -> its file stem
    return path.parent.name if path.stem in ("deploy", "deploy_dense") and path.parent.name else path.stem


def resolve_model(model: str, repo_root: str | Path = ".") -> ModelSpec:
    """MODEL: a config name (D, vgg16, ...) or a deploy / deploy_dense prototxt path."""
    path = Path(model)
    if path.suffix == ".prototxt" or path.is_file():
        param = read_net_param(path)
        if is_fully_convolutional(param):
            sibling = path.with_name("deploy.prototxt")
            fc = read_net_param(sibling) if sibling.is_file() and sibling != path else None
            if fc is not None and is_fully_convolutional(fc):
                fc = None
            dense = param
        else:
            sibling = path.with_name("deploy_dense.prototxt")
            fc, dense = param, read_net_param(sibling) if sibling.is_file() else densify(param)
        crop = input_size(fc) if fc is not None else input_size(dense)
        return ModelSpec(_name_from_path(path), dense, fc, crop, str(path))
    from prototxt_gen import generate, table

    try:
        config = table.resolve(model)
    except table.UnknownConfig as exc:
        raise ModelError(f"MODEL {model!r} is neither a prototxt file nor a config: {exc}") from None
    params = []
    for dense in (True, False):
        file = Path(repo_root) / generate.deploy_path(table.PAPER, config, dense)
        if file.is_file():
            params.append(read_net_param(file))
        else:  # not generated yet: the same text `make net` would write
            params.append(_parse_text(generate.deploy(config, table.PAPER, generate.Options(), dense), str(file)))
    return ModelSpec(config.name, params[0], params[1], table.PAPER.crop, f"config {config.name}")


@dataclass
class LoadedNets:
    dense: object | None
    crop: object | None
    num_classes: int


def load_nets(spec: ModelSpec, weights: str | Path | Mapping[str, Sequence[np.ndarray]], *,
              need_dense: bool, need_crop: bool, num_classes: int | None = None) -> LoadedNets:
    """Instantiate the nets the protocols need and copy the weights in by layer name.

    The class count is the weights' fc8 width unless num_classes says otherwise (then a
    mismatch is reported by the surgery, naming fc8). Raises SurgeryError naming the layer
    when the weights do not fit.
    """
    params = read_caffemodel(weights) if isinstance(weights, (str, Path)) else weights
    classes = num_classes or num_classes_of(params)
    dense = crop = None
    if need_dense:
        dense = instantiate(with_num_classes(spec.dense, classes))
        transplant(params, dense)
    if need_crop:
        if spec.fc is None:
            crop = dense if dense is not None else instantiate(with_num_classes(spec.dense, classes))
            if dense is None:
                transplant(params, crop)
        else:
            crop = instantiate(with_num_classes(spec.fc, classes))
            transplant(params, crop)
    return LoadedNets(dense, crop, classes)
