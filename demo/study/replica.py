"""A PyTorch replica of `make demo`'s training chain (Sec. 3.1-3.2 on the mini profile), to study its
recipe on a GPU.

A `make demo` takes 8-10 minutes of CPU, and its accuracy moves by about a point from run to run,
so what issue 7's 90% needs (more iterations, another batch, wider nets, another crop or jitter
range) takes dozens of trials. This replica runs the same chain in a minute or two per trial on a
GPU, many trials at once. What it shares with the demo:

* the nets: `bench.torch_vgg.build` from `prototxt_gen.table` (the Caffe nets' layers, Caffe's
  pools that round up), with the mini profile's size knobs replaced where a trial asks;
* Caffe's "xavier" filler with variance_norm AVERAGE, U(+-sqrt(3 / ((fan_in + fan_out) / 2))), biases 0;
* patch 0005's data layer: each Fashion-MNIST image rescaled to a smallest side S drawn from the
  regime's range (`data_prep.convert.rescale`, the LMDBs' pixels), a random crop, a random
  mirror, the mean grey level subtracted (the PCA colour shift of grey images, a few hundredths of
  a grey level, is left out);
* the recipe (`table.Recipe`): SGD with momentum, weight decay on weights only, dropout, lr 0.01
  divided by 10 on a validation plateau by patch 0006's rule, validated on the first 2,000 test
  images' centre crops every `test_interval` x 256 images; A from random init, D from A's layers
  (`table.layers_from_a`), then the jittered fine-tune at lr 0.001;
* dense evaluation (Sec. 3.2): the whole test image rescaled to Q, the fc layers applied as
  convolutions, the class-score map averaged with its mirror image's; several Q average the soft-max.

What differs from Caffe: floating-point rounding, the random streams, and torch's momentum,
which applies the rate after the velocity (the same steps while the rate holds). With Caffe's
recipe its D at S=28 gave 88.3% and 88.9% top-1 at Q=28 for seeds 0 and 1, where `make demo`'s
Caffe runs gave 87.6-88.9%.

    python -m demo.study.replica demo/study/trials/round1.jsonl --out results.jsonl --workers 8

Each line of the trials file is a JSON object: "name" and "d_its" (D's iterations of 256 images),
and optionally seed, div (width divisor), fc, dropout, crop, batch, lr, a_its, a_scale, d_scale,
sched ({"patience", "min_delta"} or {"step": [fractions of d_its]}), from_a, qs (D's test scales),
j_its, j_scale, j_qs, j_lr (the jittered fine-tune). Results append to --out, a JSON line per trial
with top-1 accuracy for every subset of the test scales.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.torch_vgg import build
from data_prep import convert, fashion_mnist
from prototxt_gen import table

RECIPE = table.MINI.recipe
SCHEDULE = table.MINI.schedule
VAL_IMAGES = 2000  # the demo validates `caffe train` on the first 2,000 test images (demo/plan.py)


def profile_for(trial: dict) -> table.Profile:
    return replace(table.MINI, width_divisor=trial.get("div", table.MINI.width_divisor),
                   fc_width=trial.get("fc", table.MINI.fc_width), crop=trial.get("crop", table.MINI.crop),
                   recipe=replace(RECIPE, dropout=trial.get("dropout", RECIPE.dropout)))


def xavier_(model: nn.Module) -> None:
    """Caffe's xavier filler, variance_norm AVERAGE (the generated prototxts' weight_filler)."""
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            receptive = layer.weight[0, 0].numel() if layer.weight.dim() > 2 else 1
            fan_in, fan_out = layer.weight.shape[1] * receptive, layer.weight.shape[0] * receptive
            bound = math.sqrt(3.0 / ((fan_in + fan_out) / 2))
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.zeros_(layer.bias)


def copy_from_a(d_net: nn.Sequential, a_net: nn.Sequential, config: table.Config,
                profile: table.Profile = table.MINI) -> list[str]:
    """Sec. 3.1: the deeper net starts from A's first four convs and three FC layers."""
    mapping = table.layers_from_a(config, profile)
    for target, source in mapping.items():
        getattr(d_net, target).load_state_dict(getattr(a_net, source).state_dict())
    return sorted(mapping)


def dense_scores(net: nn.Sequential, images: torch.Tensor, profile: table.Profile, config: table.Config) -> torch.Tensor:
    """The class-score map of the fully-convolutional net (Sec. 3.2): fc6 a convolution over
    pool5's crop-sized map, fc7 and fc8 1x1, each the fc weight reshaped (prototxt_gen.surgery's rule)."""
    x = images
    for name, layer in net.named_children():
        if name == "flatten":
            break
        x = layer(x)
    kernel = table.fc6_kernel(config, profile)
    for fc in table.fc_layers(config, profile):
        linear = getattr(net, fc.name)
        side = kernel if fc.name == "fc6" else 1
        x = F.conv2d(x, linear.weight.view(fc.out_features, -1, side, side), linear.bias)
        if fc.name != table.FC_LAYERS[-1]:
            x = F.relu(x)  # dropout is off at test time
    return x


class Plateau:
    """Patch 0006's lr_policy "plateau": a test that beats the best by more than min_delta resets
    the count; `patience` tests without one divide the rate by gamma, at most `max_drops` times."""

    def __init__(self, patience: int, min_delta: float, max_drops: int = RECIPE.lr_drops):
        self.patience, self.min_delta, self.max_drops = patience, min_delta, max_drops
        self.best, self.waited, self.drops = -math.inf, 0, 0

    def drop_after(self, accuracy: float) -> bool:
        if accuracy > self.best + self.min_delta:
            self.best, self.waited = accuracy, 0
            return False
        self.waited += 1
        if self.waited >= self.patience and self.drops < self.max_drops:
            self.waited, self.drops = 0, self.drops + 1
            return True
        return False


def rescale(images: np.ndarray, side: int) -> np.ndarray:
    """A stack of square images, each rescaled as vgg-data stores it (a new array)."""
    return np.stack([convert.rescale(image, side) for image in images])


class Data:
    """Fashion-MNIST on the device, rescaled on demand to the sides a trial draws or tests at."""

    def __init__(self, source: str, device: str):
        train, train_labels = fashion_mnist.load_split(source, "train")
        test, test_labels = fashion_mnist.load_split(source, "test")
        self.device = device
        self.mean = float(train.mean())
        self.raw = {"train": train, "test": test}
        self.train_labels = torch.tensor(train_labels, dtype=torch.long, device=device)
        self.test_labels = torch.tensor(test_labels, dtype=torch.long, device=device)
        self._test_by_side: dict[int, torch.Tensor] = {}
        self._range = None

    def test_images(self, side: int) -> torch.Tensor:
        if side not in self._test_by_side:
            self._test_by_side[side] = torch.tensor(rescale(self.raw["test"], side), device=self.device)
        return self._test_by_side[side]

    def _train_stack(self, smin: int, smax: int) -> torch.Tensor:
        """Every side in [smin, smax], zero-padded to smax: one tensor to gather crops from."""
        if self._range != (smin, smax):
            self._stack = None  # free the last range's stack before building the next
            pad = lambda a: np.pad(a, ((0, 0), (0, smax - a.shape[1]), (0, smax - a.shape[2])))
            self._stack = torch.tensor(np.stack([pad(rescale(self.raw["train"], s)) for s in range(smin, smax + 1)]),
                                       device=self.device)
            self._range = (smin, smax)
        return self._stack

    def batch(self, gen: torch.Generator, size: int, smin: int, smax: int, crop: int):
        """Patch 0005's TRAIN transform: S ~ U{smin..smax} per image, a random crop, a random mirror."""
        stack, dev = self._train_stack(smin, smax), self.device
        index = torch.randint(0, len(self.train_labels), (size,), device=dev, generator=gen)
        side = torch.randint(smin, smax + 1, (size,), device=dev, generator=gen)
        room = (side - crop + 1).float()
        top = (torch.rand(size, device=dev, generator=gen) * room).long()
        left = (torch.rand(size, device=dev, generator=gen) * room).long()
        mirror = torch.rand(size, device=dev, generator=gen) < 0.5
        steps = torch.arange(crop, device=dev)
        rows = (top[:, None] + steps)[:, :, None]
        cols = torch.where(mirror[:, None], left[:, None] + crop - 1 - steps, left[:, None] + steps)[:, None, :]
        pixels = stack[(side - smin)[:, None, None], index[:, None, None], rows, cols]
        return self.to_input(pixels), self.train_labels[index]

    def to_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """Grey levels minus the mean, as the three equal channels the demo's LMDBs hold."""
        x = pixels.float() - self.mean
        return x[:, None].expand(-1, 3, -1, -1).contiguous()


def centre_accuracy(net, data: Data, side: int, crop: int) -> float:
    """`caffe train`'s test pass: the centre crop of the first 2,000 test images at one side."""
    images = data.test_images(max(side, crop))[:VAL_IMAGES]
    offset = (images.shape[1] - crop) // 2
    net.eval()
    with torch.no_grad():
        scores = net(data.to_input(images[:, offset:offset + crop, offset:offset + crop]))
    net.train()
    return (scores.argmax(1) == data.test_labels[:VAL_IMAGES]).float().mean().item()


def train(net, data: Data, gen, iterations: int, lr: float, batch: int, scales: tuple[int, int],
          crop: int, sched: dict, log: list) -> float:
    """SGD with the recipe's momentum and weight decay (weights only), `iterations` of 256 images."""
    params = [dict(params=[p for n, p in net.named_parameters() if n.endswith("weight")],
                   weight_decay=RECIPE.weight_decay),
              dict(params=[p for n, p in net.named_parameters() if n.endswith("bias")], weight_decay=0.0)]
    opt = torch.optim.SGD(params, lr=lr, momentum=RECIPE.momentum)
    steps = iterations * RECIPE.batch // batch
    interval = SCHEDULE.test_interval * RECIPE.batch // batch
    plateau = Plateau(sched.get("patience", SCHEDULE.plateau_patience), sched.get("min_delta", SCHEDULE.plateau_min_delta))
    drops_at = {int(f * steps) for f in sched.get("step", [])}
    val_side = sum(scales) // 2
    for step in range(steps):
        dropped = step in drops_at
        if "step" not in sched and step % interval == 0:
            accuracy = centre_accuracy(net, data, val_side, crop)
            log.append([step * batch // RECIPE.batch, round(accuracy, 4), opt.param_groups[0]["lr"]])
            dropped = plateau.drop_after(accuracy)
        if dropped:
            for group in opt.param_groups:
                group["lr"] *= RECIPE.gamma
        images, labels = data.batch(gen, batch, *scales, crop)
        loss = F.cross_entropy(net(images), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    log.append([iterations, round(centre_accuracy(net, data, val_side, crop), 4), opt.param_groups[0]["lr"]])
    return loss.item()


def evaluate(net, data: Data, scales: list[int], profile: table.Profile, config: table.Config) -> dict[str, float]:
    """Dense top-1 accuracy on the 10,000 test images at each Q and every set of them (Sec. 3.2)."""
    net.eval()
    probs = {}
    with torch.no_grad():
        for q in scales:
            images, parts = data.test_images(max(q, profile.crop)), []
            for start in range(0, len(images), 2000):
                x = data.to_input(images[start:start + 2000])
                p = sum(F.softmax(dense_scores(net, v, profile, config), 1).mean((2, 3)) for v in (x, x.flip(3)))
                parts.append(p / 2)
            probs[q] = torch.cat(parts)
    net.train()
    out = {}
    for k in range(1, len(scales) + 1):
        for subset in itertools.combinations(scales, k):
            hits = sum(probs[q] for q in subset).argmax(1) == data.test_labels
            out[",".join(map(str, subset))] = round(hits.float().mean().item(), 4)
    return out


TRIAL_KEYS = {"name", "d_its", "seed", "div", "fc", "dropout", "crop", "batch", "lr", "a_its", "a_scale", "d_scale",
              "sched", "from_a", "qs", "j_its", "j_scale", "j_qs", "j_lr"}


def trial_problem(trial) -> str | None:
    """What makes a trial unrunnable, checked before any runs (a typo would otherwise be ignored,
    or fail after earlier trials had taken their minutes)."""
    if not isinstance(trial, dict):
        return "not a JSON object"
    missing = [k for k in ("name", "d_its") if k not in trial]
    unknown = sorted(set(trial) - TRIAL_KEYS)
    if missing or unknown:
        return "; ".join(filter(None, [missing and f"missing {', '.join(missing)}",
                                       unknown and f"unknown {', '.join(unknown)}"]))
    if trial.get("j_its") and not ("j_scale" in trial and "j_qs" in trial):
        return "j_its needs j_scale and j_qs"
    return None


def run_trial(trial: dict, data: Data) -> dict:
    start = time.time()
    seed = trial.get("seed", 0)
    torch.manual_seed(seed)
    gen = torch.Generator(device=data.device).manual_seed(seed)
    profile = profile_for(trial)
    crop, batch, lr = profile.crop, trial.get("batch", RECIPE.batch), trial.get("lr", RECIPE.base_lr)
    a_config, d_config = table.CONFIGS["A"], table.CONFIGS["D"]
    result = dict(trial)
    a_net = build(a_config, profile).to(data.device)
    xavier_(a_net)
    result["a_log"] = []
    train(a_net, data, gen, trial.get("a_its", 250), lr, batch, tuple(trial.get("a_scale", (crop, crop))), crop,
          {}, result["a_log"])
    d_net = build(d_config, profile).to(data.device)
    xavier_(d_net)
    if trial.get("from_a", True):
        copy_from_a(d_net, a_net, d_config, profile)
    result["d_log"] = []
    result["d_loss"] = train(d_net, data, gen, trial["d_its"], lr, batch, tuple(trial.get("d_scale", (crop, crop))),
                             crop, trial.get("sched", {}), result["d_log"])
    qs = trial.get("qs", [crop, 32])
    result["A"] = evaluate(a_net, data, qs[:2], profile, a_config)
    result["D"] = evaluate(d_net, data, qs, profile, d_config)
    if trial.get("j_its"):
        result["j_log"] = []
        train(d_net, data, gen, trial["j_its"], trial.get("j_lr", RECIPE.finetune_lr), batch,
              tuple(trial["j_scale"]), crop, {}, result["j_log"])
        result["J"] = evaluate(d_net, data, trial["j_qs"], profile, d_config)
    result["seconds"] = round(time.time() - start, 1)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m demo.study.replica", description=__doc__.split("\n\n")[0])
    p.add_argument("trials", help="JSON lines, one trial each (see the module docstring)")
    p.add_argument("--out", required=True, help="JSON lines of results, appended")
    p.add_argument("--source", default=fashion_mnist.DEBIAN_DIR, help="Fashion-MNIST's IDX files (default: %(default)s)")
    p.add_argument("--workers", type=int, default=1, help="processes, each taking every N-th trial")
    p.add_argument("--part", type=int, help=argparse.SUPPRESS)  # set for the worker processes
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be positive")
    try:
        with open(args.trials) as f:
            trials = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as exc:
        p.error(f"cannot read trials from {args.trials}: {exc}")
    for number, trial in enumerate(trials, 1):
        problem = trial_problem(trial)
        if problem:
            p.error(f"{args.trials}, trial {number}: {problem}")
    if args.part is None and args.workers > 1:
        cmd = [sys.executable, "-m", "demo.study.replica", args.trials, "--out", args.out, "--source", args.source,
               "--workers", str(args.workers)]
        workers = [subprocess.Popen(cmd + ["--part", str(k)]) for k in range(args.workers)]
        return max(w.wait() for w in workers)
    try:
        data = Data(args.source, "cuda" if torch.cuda.is_available() else "cpu")
    except fashion_mnist.IdxError as exc:
        p.error(str(exc))
    for k, trial in enumerate(trials):
        if k % args.workers != (args.part or 0):
            continue
        result = run_trial(trial, data)
        with open(args.out, "a") as f:  # one short line per write: workers may share the file
            f.write(json.dumps(result) + "\n")
        print(result["name"], json.dumps(result["D"]), json.dumps(result.get("J")), result["seconds"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
