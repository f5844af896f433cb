"""Where Caffe's time goes in one config's training net: `caffe time`'s per-layer averages, each
conv layer's achieved GFLOP/s (2 x its Table 1 multiply-adds) against the GEMM limit, and the time
its GEMMs alone take at the shapes BaseConvolutionLayer::forward_cpu_gemm issues them (one per
image). Layer time minus GEMM time is what im2col, the bias GEMM and the loop cost.

prototxt_gen.timing.time_config returns only the three totals, so this runs `caffe time` on the
same Input-layer net (prototxt_gen.net.with_input_layer) and keeps the per-layer lines.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

from prototxt_gen import generate, net, table
from prototxt_gen.render import parse
from prototxt_gen.timing import caffe_binary

# caffe.cpp: LOG(INFO) << std::setw(10) << layername << "\tforward: " << ms << " ms.";
REPO = Path(__file__).resolve().parent.parent

LAYER_LINE = re.compile(r"\]\s*(\S+)\s+(forward|backward):\s*([-+0-9.eE]+) ms\.")


def parse_layer_times(log: str) -> dict[str, dict[str, float]]:
    """{layer: {"forward_ms": .., "backward_ms": ..}} from `caffe time`'s 'Average time per layer'."""
    layers: dict[str, dict[str, float]] = {}
    for match in LAYER_LINE.finditer(log):
        name, direction, ms = match.groups()
        layers.setdefault(name, {})[f"{direction}_ms"] = float(ms)
    return layers


def runnable_train_net(config: table.Config, batch: int, profile: table.Profile = table.PAPER,
                       root: Path = REPO):
    """The config's first-stage training net under `root` (the generated files) with an Input layer
    of `batch` crops in place of its Data layers: a NetParameter that runs without an LMDB."""
    regime = table.regimes(profile)[0]
    train_val = Path(root) / generate.train_val_path(profile, config, regime)
    return net.with_input_layer(parse(train_val.read_text(), "NetParameter", str(train_val)),
                                batch=batch, crop=profile.crop)


def layer_times(config: table.Config, batch: int, iterations: int, profile: table.Profile = table.PAPER,
                root: Path = REPO) -> dict[str, dict[str, float]]:
    """`caffe time` of the config's first-stage training net (runnable_train_net)."""
    runnable = runnable_train_net(config, batch, profile, root)
    with tempfile.TemporaryDirectory() as tmp:
        prototxt = Path(tmp) / f"{config.name}_profile.prototxt"
        prototxt.write_text(str(runnable))
        run = subprocess.run([caffe_binary(), "time", "-model", str(prototxt), "-iterations", str(iterations)],
                             capture_output=True, text=True,
                             env={**os.environ, "GLOG_minloglevel": "0", "GLOG_logtostderr": "1"})
    if run.returncode != 0:
        tail = run.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"caffe time failed ({run.returncode}): {tail[0]}")
    layers = parse_layer_times(run.stderr)
    if not layers:
        raise RuntimeError("caffe time printed no per-layer times")
    return layers


def conv_rows(config: table.Config, batch: int, layers: dict[str, dict[str, float]], gemm_limit: float,
              conv_gemm: list[dict] | None = None, profile: table.Profile = table.PAPER) -> list[dict]:
    """Per conv layer: Caffe forward ms and GFLOP/s, fraction of the limit, GEMM-alone ms."""
    alone = {row["layer"]: row for row in conv_gemm or []}
    rows = []
    for conv in table.conv_layers(config, profile):
        times = layers.get(conv.name)
        if not times:
            raise KeyError(f"caffe time printed no time for {conv.name}")
        flops = 2.0 * conv.multiply_adds * batch
        fwd = times["forward_ms"]
        row = dict(layer=conv.name, forward_ms=fwd, backward_ms=times.get("backward_ms"),
                   gflops=flops / (fwd / 1e3) / 1e9 if fwd > 0 else None)
        row["fraction_of_gemm"] = row["gflops"] / gemm_limit if row["gflops"] else None
        if conv.name in alone:
            row["gemm_alone_ms"] = alone[conv.name]["gemm_ms"]
            row["gemm_alone_gflops"] = alone[conv.name]["gemm_gflops"]
            row["overhead_ms"] = fwd - alone[conv.name]["gemm_ms"]
            row["batched_gemm_ms"] = alone[conv.name].get("batched_gemm_ms")
            row["im2col_ms"] = alone[conv.name].get("im2col_ms")
        rows.append(row)
    return rows


def summary(config: table.Config, batch: int, layers: dict[str, dict[str, float]], rows: list[dict],
            gemm_limit: float, profile: table.Profile = table.PAPER) -> dict:
    """Totals by kind of layer: conv, fc, everything else (ReLU, pool, dropout, loss)."""
    conv_names = {c.name for c in table.conv_layers(config, profile)}
    fc_names = set(table.FC_LAYERS)

    def total(names, key):
        return sum(layers[n].get(key, 0.0) for n in layers if n in names)

    conv_fwd = total(conv_names, "forward_ms")
    conv_flops = 2.0 * sum(c.multiply_adds for c in table.conv_layers(config, profile)) * batch
    all_fwd = sum(t.get("forward_ms", 0.0) for t in layers.values())
    all_bwd = sum(t.get("backward_ms", 0.0) for t in layers.values())
    alone = sum(r.get("gemm_alone_ms", 0.0) for r in rows)
    return dict(config=config.name, batch=batch,
                conv_forward_ms=conv_fwd, conv_backward_ms=total(conv_names, "backward_ms"),
                fc_forward_ms=total(fc_names, "forward_ms"), fc_backward_ms=total(fc_names, "backward_ms"),
                other_forward_ms=all_fwd - conv_fwd - total(fc_names, "forward_ms"),
                other_backward_ms=all_bwd - total(conv_names, "backward_ms") - total(fc_names, "backward_ms"),
                conv_forward_gflops=conv_flops / (conv_fwd / 1e3) / 1e9 if conv_fwd else None,
                conv_forward_fraction=(conv_flops / (conv_fwd / 1e3) / 1e9) / gemm_limit if conv_fwd else None,
                conv_gemm_alone_ms=alone or None)
