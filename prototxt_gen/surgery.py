"""Moving trained weights between nets by layer name (Sec. 3.1 and 3.2).

Two operations of the paper are the same copy with different layer sets:

* Sec. 3.2, dense evaluation: "the first FC layer is converted to a 7x7 conv. layer, the
  last two FC layers to 1x1 conv. layers". Caffe's InnerProduct flattens its (C, H, W)
  input in C order, exactly the order of a convolution kernel's (C, kh, kw) axes, so an
  fc weight of shape (out, C*kh*kw) *is* the conv weight (out, C, kh, kw), reshaped.
* Sec. 3.1, initialising a deeper net from a trained net A: a subset of layers is copied
  unchanged (the selection lives with the architecture table, not here).

Everything goes through `transplant`, so both operations and loading the authors'
released caffemodels (old V1 `layers` format, blobs shaped (1, 1, out, in)) share one
shape rule: a blob is copied when its element count and its leading (output) dimension
match the target's, after dropping the legacy leading singleton axes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

Params = Mapping[str, Sequence[np.ndarray]]


class SurgeryError(ValueError):
    """Weights that do not fit the target net; the message names the layer."""


def _strip_legacy_axes(shape: tuple[int, ...]) -> tuple[int, ...]:
    # V1 blobs are always 4D (num, channels, height, width): an fc weight is (1, 1, out, in)
    # and a bias (1, 1, 1, out). Dropping leading 1s recovers (out, in) and (out,).
    while len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return shape


def fits(src_shape: Sequence[int], dst_shape: Sequence[int]) -> bool:
    """True when a blob of src_shape can be reshaped into dst_shape without reordering."""
    src = _strip_legacy_axes(tuple(src_shape))
    dst = _strip_legacy_axes(tuple(dst_shape))
    return int(np.prod(src)) == int(np.prod(dst)) and src[:1] == dst[:1]


def params_of(net) -> dict[str, list[np.ndarray]]:
    """A pycaffe Net's learnable blobs as {layer name: [weights, bias]} (copies)."""
    return {name: [blob.data.copy() for blob in blobs] for name, blobs in net.params.items()}


def read_caffemodel(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Blobs of a binary caffemodel, current (`layer`) or V1 (`layers`) format, by layer name.

    Read with caffe_pb2 directly, so a caffemodel can be inspected or transplanted without
    building the net it was trained with.
    """
    from caffe.proto import caffe_pb2

    path = Path(path)
    if not path.is_file():
        raise SurgeryError(f"weights file not found: {path}")
    model = caffe_pb2.NetParameter()
    try:
        model.ParseFromString(path.read_bytes())
    except Exception as exc:  # protobuf raises DecodeError, or RuntimeError in the C++ backend
        raise SurgeryError(f"{path}: not a caffemodel ({exc})") from exc
    params: dict[str, list[np.ndarray]] = {}
    for layer in list(model.layer) + list(model.layers):
        if not layer.blobs:
            continue
        arrays = []
        for blob in layer.blobs:
            if blob.HasField("shape"):
                shape = tuple(blob.shape.dim)
            else:
                shape = (blob.num, blob.channels, blob.height, blob.width)
            arrays.append(_blob_values(blob).reshape(shape))
        params[layer.name] = arrays
    return params


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def _packed_floats(serialized: bytes, field_number: int) -> np.ndarray | None:
    """A packed `repeated float` field straight from the wire bytes, or None if not packed.

    Converting a 100M-element repeated field element by element costs tens of seconds for
    VGG's fc6; the wire format already holds the little-endian float32 array.
    """
    pos, chunks = 0, []
    while pos < len(serialized):
        key, pos = _varint(serialized, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 2:
            length, pos = _varint(serialized, pos)
            if number == field_number:
                chunks.append(np.frombuffer(serialized, dtype="<f4", count=length // 4, offset=pos))
            pos += length
        elif wire_type == 0:
            _, pos = _varint(serialized, pos)
        elif wire_type in (1, 5):
            if number == field_number:
                return None  # unpacked encoding: let protobuf decode it
            pos += 8 if wire_type == 1 else 4
        else:
            return None
    if not chunks:
        return None
    return np.concatenate(chunks).astype(np.float32) if len(chunks) > 1 else chunks[0].astype(np.float32)


def _blob_values(blob) -> np.ndarray:
    if len(blob.data):
        packed = _packed_floats(blob.SerializeToString(), 5)  # BlobProto.data = 5
        if packed is not None and packed.size == len(blob.data):
            return packed
        return np.fromiter(blob.data, dtype=np.float32, count=len(blob.data))
    return np.fromiter(blob.double_data, dtype=np.float32, count=len(blob.double_data))


def transplant(src: Params, dst_net, layers: Iterable[str] | None = None) -> list[str]:
    """Copy src's blobs into dst_net's parameters, reshaping fc <-> conv where they fit.

    layers: the layer names to copy (default: every learnable layer of dst_net). Each must
    exist in both with the same number of blobs, and every blob must `fit`; otherwise
    SurgeryError names the layer and the shapes. Nothing is written to dst_net unless all
    named layers fit. Returns the names copied, in dst_net's order.
    """
    names = list(dst_net.params) if layers is None else list(layers)
    for name in names:
        if name not in dst_net.params:
            raise SurgeryError(f"layer {name!r} has no parameters in the target net")
        if name not in src:
            raise SurgeryError(f"layer {name!r} is missing from the source weights")
        src_blobs, dst_blobs = src[name], dst_net.params[name]
        if len(src_blobs) != len(dst_blobs):
            raise SurgeryError(
                f"layer {name!r}: source has {len(src_blobs)} blobs, target {len(dst_blobs)}")
        for i, (s, d) in enumerate(zip(src_blobs, dst_blobs)):
            if not fits(s.shape, d.data.shape):
                raise SurgeryError(
                    f"layer {name!r} blob {i}: shape {tuple(s.shape)} does not fit {tuple(d.data.shape)}")
    ordered = [name for name in dst_net.params if name in set(names)]
    for name in ordered:
        for s, d in zip(src[name], dst_net.params[name]):
            d.data[...] = np.asarray(s, dtype=np.float32).reshape(d.data.shape)
    return ordered
