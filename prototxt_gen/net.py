"""The layers of a Table 1 network, as the three Caffe nets of one config (Sec. 2.1, 3.1, 3.2).

* train_val: LMDB Data layers (TRAIN with the regime's scale jittering, random crop, mirror,
  mean and colour shift of Sec. 3.1; TEST with the single-scale Q of Sec. 3.2, centre crop),
  the body with fillers, SoftmaxWithLoss, and top-1/top-5 Accuracy in TEST.
* deploy: the authors' released form (Input 10x3x224x224, no fillers, ends in `prob`), so
  their D and E files and weights match ours layer for layer.
* deploy_dense: Sec. 3.2's fully-convolutional net: fc6 a 7x7 convolution, fc7 and fc8 1x1,
  same layer names, so trained fc weights transplant by name (prototxt_gen.surgery).

Layer names are the authors': conv{b}_{i}, relu{b}_{i}, pool{b}, fc6, relu6, drop6, fc7, relu7,
drop7, fc8, prob. The lists built here are plain data; templates/ only lays them out.
"""
from __future__ import annotations

from dataclasses import dataclass

from data_prep.stats import Stats

from . import table
from .render import number, quoted

INITS = ("gaussian", "xavier")


@dataclass(frozen=True)
class Learning:
    """Per-layer learning settings of a trainable net: lr/decay multipliers and fillers."""
    weight: tuple[float, float]  # (lr_mult, decay_mult)
    bias: tuple[float, float]
    weight_filler: list[tuple[str, str]]
    bias_filler: list[tuple[str, str]]


def learning(recipe: table.Recipe, init: str, gaussian_std: float | None = None) -> Learning:
    if init == "gaussian":
        std = recipe.gaussian_std if gaussian_std is None else gaussian_std
        weight_filler = [("type", quoted("gaussian")), ("std", number(std))]
    elif init == "xavier":
        # Glorot & Bengio (2010): uniform, variance 2 / (fan_in + fan_out); Caffe's default
        # variance_norm is FAN_IN, so ask for AVERAGE explicitly.
        weight_filler = [("type", quoted("xavier")), ("variance_norm", "AVERAGE")]
    else:
        raise ValueError(f"unknown INIT {init!r}; valid: {', '.join(INITS)}")
    return Learning(weight=(recipe.weight_lr_mult, recipe.weight_decay_mult),
                    bias=(recipe.bias_lr_mult, recipe.bias_decay_mult),
                    weight_filler=weight_filler,
                    bias_filler=[("type", quoted("constant")), ("value", "0")])


def _learnable(learn: Learning | None) -> dict:
    if learn is None:
        return dict(params=[], fillers=[])
    return dict(params=[learn.weight, learn.bias],
                fillers=[("weight_filler", learn.weight_filler), ("bias_filler", learn.bias_filler)])


def body(config: table.Config, profile: table.Profile, *, dense: bool, learn: Learning | None,
         dropout: bool = True) -> list[dict]:
    """conv1_1 ... fc8, as dicts the templates' layer macros take (key `kind` picks the macro)."""
    layers: list[dict] = []
    bottom = "data"
    convs = iter(table.conv_layers(config, profile))
    for block, stack in enumerate(config.stacks, 1):
        for _ in stack:
            conv = next(convs)
            layers.append(dict(kind="conv", name=conv.name, bottom=bottom, top=conv.name,
                               num_output=conv.out_channels, pad=conv.pad, kernel=conv.kernel, **_learnable(learn)))
            # ReLU in place, as the authors' files
            layers.append(dict(kind="relu", name="relu" + conv.name[len("conv"):], bottom=conv.name, top=conv.name))
            bottom = conv.name
            if config.lrn and len(layers) == 2:  # A-LRN: LRN after the first conv only
                layers.append(dict(kind="lrn", name="norm1", bottom=bottom, top="norm1",
                                   local_size=table.LRN_LOCAL_SIZE, alpha=table.lrn_caffe_alpha(),
                                   beta=table.LRN_BETA, k=table.LRN_K))
                bottom = "norm1"
        layers.append(dict(kind="pool", name=f"pool{block}", bottom=bottom, top=f"pool{block}",
                           kernel=table.POOL_SIZE, stride=table.POOL_SIZE))
        bottom = f"pool{block}"
    fc6_kernel = table.fc6_kernel(config, profile)
    for fc in table.fc_layers(config, profile):
        index = fc.name[len("fc"):]
        if dense:
            kernel = fc6_kernel if fc.name == "fc6" else 1
            layers.append(dict(kind="conv", name=fc.name, bottom=bottom, top=fc.name,
                               num_output=fc.out_features, pad=0, kernel=kernel, **_learnable(learn)))
        else:
            layers.append(dict(kind="fc", name=fc.name, bottom=bottom, top=fc.name,
                               num_output=fc.out_features, **_learnable(learn)))
        bottom = fc.name
        if fc.name != table.FC_LAYERS[-1]:
            layers.append(dict(kind="relu", name=f"relu{index}", bottom=fc.name, top=fc.name))
            if dropout:
                layers.append(dict(kind="dropout", name=f"drop{index}", bottom=fc.name, top=fc.name,
                                   ratio=profile.recipe.dropout))
    return layers


def net_name(config: table.Config, profile: table.Profile) -> str:
    return f"VGG_{config.name}" if profile is table.PAPER else f"VGG_{config.name}_{profile.name}"


def lmdb_path(profile: table.Profile, data_dir: str, split: str, scale: int) -> str:
    """The layout `make data` writes: <DATA>/<split>/S<scale>_lmdb."""
    return f"{data_dir.rstrip('/')}/{split}/S{scale}_lmdb"


def transform(profile: table.Profile, regime: table.Regime, stats: Stats, train: bool) -> list[tuple[str, str]]:
    """TransformationParameter fields for one phase of a regime (patched Caffe's proto names)."""
    fields = [("crop_size", number(profile.crop))]
    if train:
        fields.append(("mirror", "true"))
    fields += [("mean_value", number(v)) for v in stats.mean_bgr]
    if train:
        fields += [("smallest_side_min", number(regime.train_scale[0])),
                   ("smallest_side_max", number(regime.train_scale[1]))]
        fields += [("color_shift_eigval", number(v)) for v in stats.pca.eigenvalues]
        fields += [("color_shift_eigvec", number(v)) for row in stats.pca.eigenvectors_rgb for v in row]
        fields.append(("color_shift_std", number(profile.recipe.color_shift_std)))
    else:
        # smallest_side_min switches rescaling on; smallest_side_test is the S used in TEST
        fields += [("smallest_side_min", number(regime.test_scale)),
                   ("smallest_side_test", number(regime.test_scale))]
    return fields


def data_layers(profile: table.Profile, regime: table.Regime, stats: Stats, data_dir: str,
                train_batch: int, test_batch: int) -> list[dict]:
    train_source = lmdb_path(profile, data_dir, "train", profile.lmdb_scale_for(regime.train_scale[1]))
    test_source = lmdb_path(profile, data_dir, "val", profile.lmdb_scale_for(regime.test_scale))
    return [dict(phase="TRAIN", source=train_source, batch=train_batch,
                 transform=transform(profile, regime, stats, train=True)),
            dict(phase="TEST", source=test_source, batch=test_batch,
                 transform=transform(profile, regime, stats, train=False))]


def with_input_layer(net, batch: int, crop: int):
    """A copy of a parsed train_val NetParameter whose Data layers are one Input layer
    (data: batch x 3 x crop x crop, label: batch), so the net runs without an LMDB: for
    building filler-initialised weights and for `caffe time` with the real loss."""
    from caffe.proto import caffe_pb2

    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layer[:]
    source = caffe_pb2.LayerParameter()
    source.name, source.type = "input", "Input"
    source.top.extend(["data", "label"])
    source.input_param.shape.add().dim.extend([batch, 3, crop, crop])
    source.input_param.shape.add().dim.extend([batch])
    out.layer.add().CopyFrom(source)
    for layer in net.layer:
        if layer.type != "Data":
            out.layer.add().CopyFrom(layer)
    return out
