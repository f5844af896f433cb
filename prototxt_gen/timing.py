"""`make net-time CONFIG=D`: forward and backward time of a config's training net with `caffe time`.

The training net is timed, as SGD runs it (dropout and the loss included), with its Data layers
replaced by an Input layer of the batch asked for, so no LMDB is needed. (`caffe time -model
models/X/deploy.prototxt` works too, at the deploy file's batch of 10: `caffe time` calls every
layer's Backward itself, loss or not.)

    python -m prototxt_gen.timing D --batch 8 --iterations 5
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import generate, net, table
from .render import GenerationError, parse


def caffe_binary() -> str:
    found = shutil.which("caffe") or str(Path(sys.executable).parent / "caffe")
    if not Path(found).is_file():
        raise FileNotFoundError("the caffe binary is neither on PATH nor beside this Python (run `make setup`)")
    return found


def time_config(config: table.Config, profile: table.Profile, train_val: Path, batch: int,
                iterations: int, gpu: int | None = None) -> dict[str, float]:
    """Run `caffe time`; return its average forward / backward / forward-backward ms per batch."""
    net_param = parse(train_val.read_text(), "NetParameter", str(train_val))
    runnable = net.with_input_layer(net_param, batch=batch, crop=profile.crop)
    with tempfile.TemporaryDirectory() as tmp:
        prototxt = Path(tmp) / f"{config.name}_time.prototxt"
        prototxt.write_text(str(runnable))
        command = [caffe_binary(), "time", "-model", str(prototxt), "-iterations", str(iterations)]
        if gpu is not None:
            command += ["-gpu", str(gpu)]
        # the averages are INFO lines: a GLOG_minloglevel set by the caller would hide them
        run = subprocess.run(command, capture_output=True, text=True,
                             env={**os.environ, "GLOG_minloglevel": "0", "GLOG_logtostderr": "1"})
    if run.returncode != 0:
        tail = run.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"caffe time failed ({run.returncode}): {tail[0]}")
    times = {}
    for key, label in (("forward_ms", "Average Forward pass"), ("backward_ms", "Average Backward pass"),
                       ("forward_backward_ms", "Average Forward-Backward")):
        match = re.search(label + r":\s*([0-9.]+)\s*ms", run.stderr)
        if not match:
            raise RuntimeError(f"caffe time printed no {label!r}")
        times[key] = float(match.group(1))
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m prototxt_gen.timing", description=__doc__.split("\n\n")[0])
    p.add_argument("configs", nargs="+", metavar="CONFIG")
    p.add_argument("--profile", choices=sorted(table.PROFILES), default=table.PAPER.name)
    p.add_argument("--batch", type=int, default=8, help="images per pass (default 8)")
    p.add_argument("--iterations", type=int, default=3, help="timed passes (default 3)")
    p.add_argument("--gpu", type=int, default=None, help="GPU id (default: CPU)")
    args = p.parse_args(argv)
    if args.batch < 1 or args.iterations < 1:
        p.error("--batch and --iterations must be positive")
    profile = table.PROFILES[args.profile]
    try:
        configs = [table.resolve(name) for name in args.configs]
    except table.UnknownConfig as exc:
        p.error(str(exc))
    print(f"{'config':8} {'batch':>5} {'forward ms':>11} {'backward ms':>12} {'fwd+bwd ms/image':>17}")
    for config in configs:
        train_val = Path(generate.train_val_path(profile, config, table.regimes(profile)[0]))
        try:
            if not train_val.is_file():
                raise FileNotFoundError(f"{train_val} not found (run `{generate.generate_command(config, profile)}`)")
            t = time_config(config, profile, train_val, args.batch, args.iterations, args.gpu)
        except (OSError, RuntimeError, GenerationError) as exc:
            print(f"net-time: error: {config.name}: {exc}", file=sys.stderr)
            return 1
        print(f"{config.name:8} {args.batch:5} {t['forward_ms']:11.1f} {t['backward_ms']:12.1f} "
              f"{t['forward_backward_ms'] / args.batch:17.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
