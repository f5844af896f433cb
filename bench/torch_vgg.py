"""The Table 1 configurations (Sec. 2.1) as plain torch.nn layers, and their CPU timing: what a
user would run instead of our Caffe.

Built from `prototxt_gen.table`, the same source the Caffe prototxts come from, with the Caffe
nets' layer names, so the two frameworks time the same architecture: 3x3 (C: 1x1; B-5x5: 5x5)
"same" convolutions, ReLU, A-LRN's LRN after conv1_1, 2x2/2 max-pools rounding up as Caffe's do,
fc6-fc8 with ReLU and dropout 0.5 after fc6 and fc7, soft-max cross-entropy in training.

    python -m bench.torch_vgg D --batch 8 --iterations 2       # prints JSON (ms per batch)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import OrderedDict

import torch
from torch import nn

from prototxt_gen import table


def build(config: table.Config, profile: table.Profile = table.PAPER) -> nn.Sequential:
    """The training net of `config` up to fc8 (the loss is applied outside, as CrossEntropyLoss)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    convs = iter(table.conv_layers(config, profile))
    for block, stack in enumerate(config.stacks, 1):
        for _ in stack:
            conv = next(convs)
            layers[conv.name] = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel, padding=conv.pad)
            layers["relu" + conv.name[len("conv"):]] = nn.ReLU(inplace=True)
            if config.lrn and len(layers) == 2:
                # torch, like Caffe, divides alpha by the window size: the same number fits both
                layers["norm1"] = nn.LocalResponseNorm(table.LRN_LOCAL_SIZE, alpha=table.lrn_caffe_alpha(),
                                                       beta=table.LRN_BETA, k=table.LRN_K)
        layers[f"pool{block}"] = nn.MaxPool2d(table.POOL_SIZE, table.POOL_SIZE, ceil_mode=True)
    layers["flatten"] = nn.Flatten()
    for fc in table.fc_layers(config, profile):
        index = fc.name[len("fc"):]
        layers[fc.name] = nn.Linear(fc.in_features, fc.out_features)
        if fc.name != table.FC_LAYERS[-1]:
            layers[f"relu{index}"] = nn.ReLU(inplace=True)
            layers[f"drop{index}"] = nn.Dropout(profile.recipe.dropout)
    return nn.Sequential(layers)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def multiply_adds(model: nn.Sequential, size: int) -> int:
    """Weight multiply-adds of one forward pass at size x size, counted from the torch layers."""
    total, spatial = 0, size
    for layer in model:
        if isinstance(layer, nn.Conv2d):
            total += spatial * spatial * layer.weight.numel()
        elif isinstance(layer, nn.MaxPool2d):
            spatial = table.pooled(spatial)
        elif isinstance(layer, nn.Linear):
            total += layer.weight.numel()
    return total


def _ms(seconds: list[float]) -> float:
    return 1e3 * sum(seconds) / len(seconds)


def time_training(model: nn.Module, batch: int, crop: int, classes: int, iterations: int,
                  warmup: int = 1) -> dict[str, float]:
    """Average forward (loss included) and backward ms per batch of one SGD step's worth of work,
    as `caffe time` measures the training net (no optimizer update in either)."""
    torch.manual_seed(0)
    data = torch.randn(batch, 3, crop, crop)
    label = torch.randint(0, classes, (batch,))
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    forward, backward = [], []
    for i in range(warmup + iterations):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        loss = loss_fn(model(data), label)
        middle = time.perf_counter()
        loss.backward()
        end = time.perf_counter()
        if i >= warmup:
            forward.append(middle - start)
            backward.append(end - middle)
    return dict(forward_ms=_ms(forward), backward_ms=_ms(backward),
                forward_backward_ms=_ms([f + b for f, b in zip(forward, backward)]))


def time_inference(model: nn.Module, batch: int, crop: int, iterations: int, warmup: int = 1) -> float:
    """Average ms per batch of a deploy forward: eval mode, no autograd (PyTorch's fastest plain path)."""
    data = torch.randn(batch, 3, crop, crop, generator=torch.Generator().manual_seed(1))
    model.eval()
    times = []
    with torch.inference_mode():
        for i in range(warmup + iterations):
            start = time.perf_counter()
            model(data)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return _ms(times)


def time_config(config: table.Config, batch: int, iterations: int, profile: table.Profile = table.PAPER) -> dict:
    torch.manual_seed(0)
    model = build(config, profile)
    times = time_training(model, batch, profile.crop, profile.num_classes, iterations)
    times["inference_ms"] = time_inference(model, batch, profile.crop, iterations)
    return dict(config=config.name, batch=batch, iterations=iterations, threads=torch.get_num_threads(),
                torch=torch.__version__, **times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.torch_vgg", description=__doc__.split("\n\n")[0])
    p.add_argument("config", type=table.config_argument)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--profile", choices=sorted(table.PROFILES), default=table.PAPER.name)
    args = p.parse_args(argv)
    if args.batch < 1 or args.iterations < 1:
        p.error("--batch and --iterations must be positive")
    config = args.config
    print(json.dumps(time_config(config, args.batch, args.iterations, table.PROFILES[args.profile])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
