"""Dense testing inside `caffe test` (Sec. 3.2, 3.3): "training and evaluating on full-size
(uncropped) images at multiple scales" in Caffe itself.

The generated test net (test_dense_Q<Q>.prototxt) reads an LMDB of full images, batch 1 so
every image keeps its own size; the patched DataTransformer rescales each to smallest side
Q with crop_size 0 (`smallest_side_test`, the rescale-without-crop mode); the body is the
model's deploy_dense (fc layers as convolutions); a global average pooling layer averages
the fc8 score map into class scores, which the top-1/top-5 Accuracy layers read. Averaging
the score map before soft-max is the pycaffe dense path's order too, and soft-max does not
change a ranking, so the accuracies equal the pycaffe dense evaluation's at the same Q
without the mirror image.

`caffe test` copies weights only into blobs of the same shape, so the trained fc weights are
converted once (prototxt_gen.surgery.transplant) into a dense caffemodel beside the net.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .atomic import replacing, write_text
from .nets import SCORE_LAYER, ModelSpec, load_nets, resolve_model, with_num_classes

SCORES = "fc8_mean"


def dense_test_net_file(scale: int) -> str:
    return f"test_dense_Q{scale}.prototxt"


def caffe_test_net(dense, scale: int, source: str, mean_bgr: Sequence[float]):
    """A NetParameter: LMDB (batch 1, rescaled to Q, uncropped) -> dense body -> mean of fc8 -> accuracy."""
    from caffe.proto import caffe_pb2

    net = caffe_pb2.NetParameter()
    net.name = f"{dense.name}_test_dense_Q{scale}"
    data = net.layer.add()
    data.name, data.type = "data", "Data"
    data.top.extend(["data", "label"])
    data.include.add().phase = caffe_pb2.TEST
    transform = data.transform_param
    transform.mean_value.extend(float(v) for v in mean_bgr)
    transform.crop_size = 0  # the whole image: dense testing
    transform.smallest_side_min = scale
    transform.smallest_side_test = scale
    data.data_param.source = str(source)
    data.data_param.batch_size = 1  # every image at its own size
    data.data_param.backend = caffe_pb2.DataParameter.LMDB
    for layer in dense.layer:
        if layer.type == "Input":
            continue
        net.layer.add().CopyFrom(layer)
        if layer.name == SCORE_LAYER:
            break
    pool = net.layer.add()
    pool.name, pool.type = SCORES, "Pooling"
    pool.bottom.append(SCORE_LAYER)
    pool.top.append(SCORES)
    pool.pooling_param.pool = caffe_pb2.PoolingParameter.AVE
    pool.pooling_param.global_pooling = True
    for k in (1, 5):
        accuracy = net.layer.add()
        accuracy.name, accuracy.type = f"accuracy_top{k}", "Accuracy"
        accuracy.bottom.extend([SCORES, "label"])
        accuracy.top.append(f"accuracy_top{k}")
        accuracy.include.add().phase = caffe_pb2.TEST
        accuracy.accuracy_param.top_k = k
    return net


def default_source(scale: int, data_dir: str | None) -> str:
    """The val LMDB `make data` writes that reaches Q by downsampling (prototxt_gen's layout)."""
    from prototxt_gen import net as gen_net, table

    profile = table.PAPER
    return gen_net.lmdb_path(profile, data_dir or profile.data_dir, "val", profile.lmdb_scale_for(scale))


@dataclass(frozen=True)
class Written:
    net: Path
    weights: Path | None
    source: str

    def command(self, iterations: str = "<number of images>") -> str:
        weights = f" -weights {self.weights}" if self.weights else " -weights <dense caffemodel>"
        return f"caffe test -model {self.net}{weights} -iterations {iterations}"

    def summary(self) -> list[str]:
        lines = [f"wrote {self.net}"] + ([f"wrote {self.weights}"] if self.weights else [])
        return lines + [f"run: {self.command()}  (batch 1: one iteration per image of {self.source})"]


def write_caffe_test_net(model: str | ModelSpec, scale: int, *, weights: str | Path | None = None,
                         source: str | None = None, data_dir: str | None = None,
                         mean_bgr: Sequence[float] = (103.939, 116.779, 123.68), num_classes: int | None = None,
                         out_dir: str | Path | None = None) -> Written:
    """Write <out_dir>/test_dense_Q<Q>.prototxt and, given weights, <stem>_dense.caffemodel."""
    spec = model if isinstance(model, ModelSpec) else resolve_model(model)
    if out_dir is None:
        out_dir = Path(spec.source).parent if Path(spec.source).is_file() else Path("models") / spec.name
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dense_weights = None
    classes = num_classes
    if weights is not None:
        nets = load_nets(spec, weights, need_dense=True, need_crop=False, num_classes=num_classes)
        classes = nets.num_classes
        dense_weights = out_dir / f"{Path(weights).stem}_dense.caffemodel"
        with replacing(dense_weights) as tmp:
            nets.dense.save(tmp)
    dense = with_num_classes(spec.dense, classes) if classes else spec.dense
    source = source or default_source(scale, data_dir)
    param = caffe_test_net(dense, scale, source, mean_bgr)
    header = (f"# Dense testing of {spec.name} at Q={scale} inside `caffe test` (Sec. 3.2): batch 1, each\n"
              f"# image rescaled to smallest side {scale} and kept whole, fc8's score map averaged.\n"
              f"# Generated by `vgg-eval caffe-net` from {spec.source}: regenerate, do not edit.\n")
    path = out_dir / dense_test_net_file(scale)
    write_text(path, header + str(param))
    return Written(path, dense_weights, source)
