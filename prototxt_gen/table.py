"""Table 1, the Sec. 3.1 training recipe and the scale regimes, as data: the single source of truth.

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition"
(ICLR 2015):

* Sec. 2.1 / Table 1: configurations A, A-LRN, B, C, D, E. Every conv has stride 1 and
  "same" padding (3x3 pad 1; C's 1x1 pad 0); each of the five stacks ends in a 2x2/2 max-pool;
  the head is FC-4096, FC-4096, FC-1000, soft-max; LRN (A-LRN only) follows the first conv.
* Sec. 4.1: B-5x5, B with each pair of 3x3 convs replaced by one 5x5 conv (pad 2).
* Sec. 3.1: batch 256, momentum 0.9, weight decay 5e-4, dropout 0.5 after fc6 and fc7,
  lr 1e-2 divided by 10 when validation accuracy stops improving (3 times), 370K iterations;
  Gaussian init for A, deeper nets start from A's first four convs and three FC layers;
  training scales S=256, S=384 (from the S=256 net, lr 1e-3) and S in [256, 512]
  (fine-tuned from the S=384 net).
* Sec. 3.2: single-scale test Q = S for fixed S, Q = (S_min + S_max) / 2 for jittered S.

Everything numeric the generators write derives here (feature-map sizes, the fc6 kernel of the
dense net, parameter counts, multiply-adds, the A -> deeper-net layer map, the batch split), so
tests can check it against the paper and against Caffe. The size knobs live in `Profile`, so a
reduced profile changes only those and never the architecture's shape or the recipe's logic.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, replace


# --------------------------------------------------------------------------- Table 1

@dataclass(frozen=True)
class Conv:
    kernel: int
    channels: int  # the paper's width; a profile may divide it

    @property
    def pad(self) -> int:
        # "same" padding, so only the pools change the spatial size (Sec. 2.1)
        return self.kernel // 2


def _stack(*specs: str) -> tuple[Conv, ...]:
    """'3-64' is the paper's conv3-64; '3-64x2' two of them."""
    convs: list[Conv] = []
    for spec in specs:
        kernel_width, _, times = spec.partition("x")
        kernel, width = kernel_width.split("-")
        convs += [Conv(int(kernel), int(width))] * int(times or 1)
    return tuple(convs)


@dataclass(frozen=True)
class Config:
    name: str
    stacks: tuple[tuple[Conv, ...], ...]  # five conv stacks, each followed by a max-pool
    lrn: bool = False  # A-LRN: LRN after the first conv layer (Table 1)
    source: str = "Table 1"
    note: str = ""  # what the paper says of this config beyond Table 1

    @property
    def weight_layers(self) -> int:
        return sum(len(s) for s in self.stacks) + len(FC_LAYERS)

    def conv_names(self) -> list[str]:
        return [conv_name(b, i) for b, stack in enumerate(self.stacks, 1) for i in range(1, len(stack) + 1)]


def conv_name(block: int, index: int) -> str:
    return f"conv{block}_{index}"


FC_LAYERS = ("fc6", "fc7", "fc8")
POOL_SIZE = 2  # 2x2 max-pool, stride 2 (Sec. 2.1)

CONFIGS: dict[str, Config] = {c.name: c for c in (
    Config("A", (_stack("3-64"), _stack("3-128"), _stack("3-256x2"), _stack("3-512x2"), _stack("3-512x2"))),
    Config("A-LRN", (_stack("3-64"), _stack("3-128"), _stack("3-256x2"), _stack("3-512x2"), _stack("3-512x2")),
           lrn=True),
    Config("B", (_stack("3-64x2"), _stack("3-128x2"), _stack("3-256x2"), _stack("3-512x2"), _stack("3-512x2"))),
    Config("C", (_stack("3-64x2"), _stack("3-128x2"), _stack("3-256x2", "1-256"), _stack("3-512x2", "1-512"),
                 _stack("3-512x2", "1-512"))),
    Config("D", (_stack("3-64x2"), _stack("3-128x2"), _stack("3-256x3"), _stack("3-512x3"), _stack("3-512x3"))),
    Config("E", (_stack("3-64x2"), _stack("3-128x2"), _stack("3-256x4"), _stack("3-512x4"), _stack("3-512x4"))),
    Config("B-5x5", (_stack("5-64"), _stack("5-128"), _stack("5-256"), _stack("5-512"), _stack("5-512")),
           source="Sec. 4.1",
           note="Sec. 4.1: B with each pair of 3x3 convs replaced by one 5x5 conv of the same receptive "
                "field; its top-1 error (centre crop) was 7% higher than B's, so a deep net with small "
                "filters beats a shallower one with larger filters."),
)}

ALIASES = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}

# AlexNet's LRN (Krizhevsky et al. 2012), as Table 1 cites it: b = a / (k + alpha * sum a^2)^beta.
LRN_LOCAL_SIZE = 5
LRN_ALPHA = 1e-4
LRN_BETA = 0.75
LRN_K = 2.0


def lrn_caffe_alpha() -> float:
    """Caffe's LRN divides alpha by local_size; AlexNet's formula does not."""
    return LRN_ALPHA * LRN_LOCAL_SIZE


class UnknownConfig(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def valid_names() -> list[str]:
    return list(CONFIGS) + list(ALIASES)


def resolve(name: str) -> Config:
    """A config by the paper's name or an alias (vgg11/13/16/19)."""
    key = ALIASES.get(name.lower(), name)
    if key not in CONFIGS:
        raise UnknownConfig(f"unknown config {name!r}; valid: {', '.join(valid_names())}")
    return CONFIGS[key]


def config_argument(name: str) -> Config:
    """resolve() as an argparse `type=`: an unknown name is argparse's usage error (exit 2)."""
    try:
        return resolve(name)
    except UnknownConfig as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --------------------------------------------------------------------------- Sec. 3.1 recipe

@dataclass(frozen=True)
class Recipe:
    batch: int = 256
    momentum: float = 0.9
    weight_decay: float = 5e-4
    dropout: float = 0.5
    base_lr: float = 1e-2
    # Sec. 3.1: S=384 "used a smaller initial learning rate of 1e-3"; the multi-scale stage
    # fine-tunes the S=384 net, and the paper gives no rate for it, so it keeps 1e-3.
    finetune_lr: float = 1e-3
    gamma: float = 0.1
    lr_drops: int = 3
    max_iter: int = 370_000
    # Weights ~ N(0, std^2), biases 0. The paper prints "variance 1e-2"; see gaussian_gain().
    gaussian_std: float = 1e-2
    color_shift_std: float = 0.1  # AlexNet PCA lighting, alpha_i ~ N(0, 0.1)
    # One learning rate for every layer (Sec. 3.1); the L2 penalty on weights only.
    weight_lr_mult: float = 1.0
    weight_decay_mult: float = 1.0
    bias_lr_mult: float = 1.0
    bias_decay_mult: float = 0.0


PAPER_RECIPE = Recipe()


ILSVRC12_TRAIN = 1_281_167  # ILSVRC-2012's training images; Sec. 3.1: 370K iterations x 256 = 74 epochs


@dataclass(frozen=True)
class Schedule:
    """When to test, drop, snapshot: not in the paper, so ours (readme says so)."""
    test_interval: int = 5_000  # ~one epoch of ILSVRC-2012 (1.28M images / 256)
    plateau_patience: int = 3  # test evaluations without improvement before lr /= 10
    plateau_min_delta: float = 1e-3  # 0.1 point of top-1 accuracy
    snapshot: int = 10_000
    display: int = 20


# --------------------------------------------------------------------------- profiles (size knobs)

@dataclass(frozen=True)
class Profile:
    name: str
    models_dir: str
    solvers_dir: str
    width_divisor: int = 1
    fc_width: int = 4096
    num_classes: int = 1000
    crop: int = 224
    single_scales: tuple[int, int] = (256, 384)
    jitter: tuple[int, int] = (256, 512)
    data_dir: str = "data/ilsvrc12"
    val_images: int = 50_000  # ILSVRC-2012 val; the generator counts the real LMDB when present
    deploy_batch: int = 10  # the authors' deploy input is 10x3x224x224
    recipe: Recipe = PAPER_RECIPE
    schedule: Schedule = field(default_factory=Schedule)

    def width(self, paper_channels: int) -> int:
        return max(1, paper_channels // self.width_divisor)

    @property
    def lmdb_scales(self) -> tuple[int, ...]:
        """Scales stored on disk: the fixed ones and the top of the jitter range (downsample only)."""
        return tuple(sorted(set(self.single_scales) | {self.jitter[1]}))

    def lmdb_scale_for(self, smallest_side: int) -> int:
        """The smallest stored scale from which S is reached by downsampling."""
        for scale in self.lmdb_scales:
            if scale >= smallest_side:
                return scale
        raise ValueError(f"no stored scale >= {smallest_side} in {self.lmdb_scales}")


PAPER = Profile(name="paper", models_dir="models", solvers_dir="solvers")

# A reduced size for the CPU demo on Fashion-MNIST (28x28 images, 10 classes): the same table and
# recipe logic, only sizes and run length changed, written under models/mini/ and solvers/mini/
# so it can never overwrite or pass for the paper's files. The schedule is the demo's to tune.
MINI = Profile(name="mini", models_dir="models/mini", solvers_dir="solvers/mini", width_divisor=8,
               # crop 224 / 8 = 28, Fashion-MNIST's own size. The scales cannot all shrink by 8 too:
               # five 2x2 pools make the stride 32 px in every profile, so on 28-px images a dense
               # test at Q > 32 scores windows centred off the object (the paper's 224-px windows
               # overlap 7 steps of 32). So S = 28 (the whole image) and 32, S in [28, 32]: every
               # test Q stays 28-32, where the score map is one window over the whole image.
               fc_width=256, num_classes=10, crop=28, single_scales=(28, 32), jitter=(28, 32),
               data_dir="data/mini", val_images=10_000,
               # Batch 64: the paper's 256 makes 5,004 steps an epoch of ILSVRC's 1.28 M images, but only
               # 234 of Fashion-MNIST's 60,000. D at batch 64 scored 88.9-90.3% under multi-scale testing
               # (8,000-10,000 steps, 7 runs), 90.2-91.3% at 16,000 steps; at 256 86.5-88.2% (2,000
               # steps, 5 runs). Every run: demo/README.md.
               # max_iter: the longest stage of `make demo` (demo/plan.py sets each stage's length).
               recipe=replace(PAPER_RECIPE, batch=64, max_iter=16_000),
               # A test every 25,600 images, 0.43 epochs. Patience on the 2,000 validation images
               # (0.7 points of noise): at 2 the first lr drop came after 3,200 steps (88.9%), at 3
               # after 4,400-7,200 (89.5-90.3%), at 4 after 5,200-10,800 (89.96-91.31%, 6 runs).
               schedule=Schedule(test_interval=400, plateau_patience=4, snapshot=400, display=80))
PROFILES = {p.name: p for p in (PAPER, MINI)}


# --------------------------------------------------------------------------- scale regimes

@dataclass(frozen=True)
class Regime:
    """One training stage of Sec. 3.1: what S it trains at, what it starts from, at what lr."""
    name: str  # "S256", "S384", "S256-512"
    train_scale: tuple[int, int]  # (S_min, S_max); equal for a fixed S
    test_scale: int  # the single-scale Q of Sec. 3.2, used for validation
    base_lr: float
    start_from: str | None  # the regime whose final weights it starts from; None: first stage
    first_stage: bool

    @property
    def jittered(self) -> bool:
        return self.train_scale[0] != self.train_scale[1]


def regimes(profile: Profile) -> list[Regime]:
    """S=s0 first, S=s1 from S=s0 at the fine-tuning lr, [lo, hi] from S=s1 (paper: 256, 384, [256, 512])."""
    s0, s1 = profile.single_scales
    lo, hi = profile.jitter
    recipe = profile.recipe
    first = Regime(f"S{s0}", (s0, s0), s0, recipe.base_lr, None, True)
    second = Regime(f"S{s1}", (s1, s1), s1, recipe.finetune_lr, first.name, False)
    # Sec. 3.2: "Q = 0.5(S_min + S_max)" for jittered S
    third = Regime(f"S{lo}-{hi}", (lo, hi), (lo + hi) // 2, recipe.finetune_lr, second.name, False)
    return [first, second, third]


# Table 3 (single test scale, ILSVRC-2012 val): (train S, test Q, top-1 %, top-5 %), what to expect.
TABLE3 = {
    "A": [("256", "256", 29.6, 10.4)],
    "A-LRN": [("256", "256", 29.7, 10.5)],
    "B": [("256", "256", 28.7, 9.9)],
    "C": [("256", "256", 28.1, 9.4), ("384", "384", 28.1, 9.3), ("[256;512]", "384", 27.3, 8.8)],
    "D": [("256", "256", 27.0, 8.8), ("384", "384", 26.8, 8.7), ("[256;512]", "384", 25.6, 8.1)],
    "E": [("256", "256", 27.3, 9.0), ("384", "384", 26.9, 8.7), ("[256;512]", "384", 25.5, 8.0)],
}


# --------------------------------------------------------------------------- derived quantities

@dataclass(frozen=True)
class ConvLayer:
    name: str
    kernel: int
    pad: int
    in_channels: int
    out_channels: int
    in_size: int  # spatial size of the input map (square), at the profile's crop

    @property
    def multiply_adds(self) -> int:
        """Of one image's forward pass: every conv of Table 1 keeps the map's size (stride 1, "same" pad)."""
        return self.in_size * self.in_size * self.kernel * self.kernel * self.in_channels * self.out_channels


def pooled(size: int) -> int:
    """Caffe's 2x2/2 max-pool output size (it rounds up)."""
    return int(math.ceil((size - POOL_SIZE) / POOL_SIZE)) + 1


def conv_layers(config: Config, profile: Profile = PAPER, size: int | None = None) -> list[ConvLayer]:
    size = profile.crop if size is None else size
    layers, channels = [], 3
    for block, stack in enumerate(config.stacks, 1):
        for index, conv in enumerate(stack, 1):
            width = profile.width(conv.channels)
            layers.append(ConvLayer(conv_name(block, index), conv.kernel, conv.pad, channels, width, size))
            channels = width
        size = pooled(size)
    return layers


def feature_map_sizes(config: Config, size: int) -> list[int]:
    """Spatial size after each of the five pools, for a square input of `size`."""
    sizes = []
    for _ in config.stacks:
        size = pooled(size)
        sizes.append(size)
    return sizes


def fc6_kernel(config: Config, profile: Profile = PAPER) -> int:
    """The dense net's fc6 is a conv whose kernel covers the pool5 map of a training crop."""
    return feature_map_sizes(config, profile.crop)[-1]


@dataclass(frozen=True)
class FcLayer:
    name: str
    in_features: int
    out_features: int


def fc_layers(config: Config, profile: Profile = PAPER) -> list[FcLayer]:
    last = conv_layers(config, profile)[-1].out_channels
    k = fc6_kernel(config, profile)
    return [FcLayer("fc6", last * k * k, profile.fc_width),
            FcLayer("fc7", profile.fc_width, profile.fc_width),
            FcLayer("fc8", profile.fc_width, profile.num_classes)]


def param_count(config: Config, profile: Profile = PAPER) -> int:
    """Learnable parameters, weights + biases (Table 2)."""
    convs = sum(c.kernel * c.kernel * c.in_channels * c.out_channels + c.out_channels
                for c in conv_layers(config, profile))
    fcs = sum(f.in_features * f.out_features + f.out_features for f in fc_layers(config, profile))
    return convs + fcs


def multiply_adds(config: Config, profile: Profile = PAPER) -> int:
    """Multiply-adds of one forward pass at the crop size (weights only, as usually counted)."""
    convs = sum(c.multiply_adds for c in conv_layers(config, profile))
    return convs + sum(f.in_features * f.out_features for f in fc_layers(config, profile))


def initialised_from_a(config: Config) -> bool:
    """Sec. 3.1: A is "shallow enough to be trained with random initialisation"; deeper nets start from A."""
    return config.weight_layers > CONFIGS["A"].weight_layers


def layers_from_a(config: Config, profile: Profile = PAPER) -> dict[str, str]:
    """{target layer: A's layer} copied by the Sec. 3.1 initialisation of a deeper net.

    The paper: "we initialised the first four convolutional layers and the last three
    fully-connected layers with the layers of net A". A's first four conv layers are
    conv1_1 (3->64), conv2_1 (64->128), conv3_1 (128->256), conv3_2 (256->256); a deeper net's
    own first four (conv1_1, conv1_2, conv2_1, conv2_2 in B-E) cannot hold three of them.
    So A's four are placed in order: each goes to the next conv of the target, after the
    previous one placed, with the same kernel and the same input and output widths. For B, C,
    D and E this lands every one on the layer of the same name (conv1_1, conv2_1, conv3_1,
    conv3_2); layers in between stay random, which is the paper's "intermediate layers were
    initialised randomly". A layer of A that fits nowhere is not copied (none, for B-E).
    """
    if not initialised_from_a(config):
        return {}
    source = conv_layers(CONFIGS["A"], profile)[:4]
    target = conv_layers(config, profile)
    mapping: dict[str, str] = {}
    position = 0
    for src in source:
        for j in range(position, len(target)):
            dst = target[j]
            if (dst.kernel, dst.in_channels, dst.out_channels) == (src.kernel, src.in_channels, src.out_channels):
                mapping[dst.name] = src.name
                position = j + 1
                break
    # fc6's input is pool5 (last conv width x fc6_kernel^2) in every config, so the head always fits
    mapping.update({name: name for name in FC_LAYERS})
    return mapping


def gaussian_gain(config: Config, std: float, profile: Profile = PAPER) -> list[float]:
    """Per conv layer, the factor by which N(0, std^2) weights scale a ReLU net's activation
    variance: fan_in * std^2 / 2 (He et al. 2015, Eq. 10). Shows which reading of "variance
    1e-2" could train: std 0.1 multiplies by ~23 per 512-wide layer (explodes), std 0.01 by 0.23."""
    return [c.kernel * c.kernel * c.in_channels * std * std / 2 for c in conv_layers(config, profile)]


# --------------------------------------------------------------------------- Sec. 3.3 batch split

class BatchSplitError(ValueError):
    pass


@dataclass(frozen=True)
class BatchSplit:
    gpus: int  # 0: the CPU
    batch: int  # per GPU (or the CPU's), what the prototxt says
    iter_size: int

    @property
    def devices(self) -> int:
        return max(self.gpus, 1)

    @property
    def effective(self) -> int:
        return self.devices * self.batch * self.iter_size

    def describe(self) -> str:
        where = f"per GPU x {self.gpus} GPU(s)" if self.gpus else "on the CPU"
        return f"{self.batch} {where} x iter_size {self.iter_size} = {self.effective}"


def batch_split(gpus: int, batch: int | None = None, total: int = PAPER_RECIPE.batch) -> BatchSplit:
    """Caffe runs the prototxt's batch on every GPU and averages gradients over GPUs and over
    iter_size, so GPUS x BATCH x iter_size = 256 reproduces the paper's batch exactly.
    gpus=0 means one CPU process."""
    if gpus < 0:
        raise BatchSplitError(f"GPUS must be a non-negative integer (0: CPU), got {gpus}")
    devices = max(gpus, 1)
    if batch is None:
        if total % devices:
            raise BatchSplitError(f"GPUS={gpus} cannot split the batch of {total} evenly; "
                                  f"use a divisor of {total} or set BATCH so that GPUS*BATCH divides {total}")
        return BatchSplit(gpus, total // devices, 1)
    if batch < 1:
        raise BatchSplitError(f"BATCH must be a positive integer, got {batch}")
    if total % (devices * batch):
        raise BatchSplitError(f"GPUS={gpus} x BATCH={batch} = {devices * batch} does not divide the batch of "
                              f"{total}, so no iter_size reproduces it")
    return BatchSplit(gpus, batch, total // (devices * batch))


def test_batch(val_images: int, train_batch: int) -> tuple[int, int]:
    """(batch, iterations) covering every validation image exactly once, batch <= the train batch."""
    for batch in range(min(train_batch, val_images), 0, -1):
        if val_images % batch == 0:
            return batch, val_images // batch
    raise ValueError(f"no validation images ({val_images})")
