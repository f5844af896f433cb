"""vgg-init-from-a: the initial weights of a deeper net from a trained net A (Sec. 3.1).

"when training deeper architectures, we initialised the first four convolutional layers and the
last three fully-connected layers with the layers of net A (the intermediate layers were
initialised randomly)". Which layer of the target receives which layer of A is
`table.layers_from_a` (a name map, read in the readme); the copy is `surgery.transplant`, by
the target's layer names. The other layers keep the fillers of the target's train_val
prototxt, drawn by Caffe itself with a seeded RNG, so the output is exactly what `caffe train`
would have started from, with A's layers in place.

    vgg-init-from-a D --a-weights models/A/vgg_A_S256_iter_370000.caffemodel
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from . import generate, net, surgery, table
from .render import GenerationError, parse


class InitError(ValueError):
    pass


def build(config: table.Config, a_weights: str | Path, train_val: str | Path, out: str | Path,
          profile: table.Profile = table.PAPER, seed: int = 0) -> list[tuple[str, str]]:
    """Write `out`; return the (target layer, A's layer) pairs copied."""
    mapping = table.layers_from_a(config, profile)
    if not mapping:
        raise InitError(f"config {config.name} is not deeper than A; it trains from random init (Sec. 3.1)")
    source = surgery.read_caffemodel(a_weights)
    missing = [name for name in mapping.values() if name not in source]
    if missing:
        raise InitError(f"{a_weights}: no layer {missing[0]!r}; is it a net A caffemodel?")
    train_val = Path(train_val)
    if not train_val.is_file():
        raise InitError(f"training net not found: {train_val} (run `{generate.generate_command(config, profile)}`)")
    net_param = parse(train_val.read_text(), "NetParameter", str(train_val))
    runnable = net.with_input_layer(net_param, batch=1, crop=profile.crop)

    import caffe
    caffe.set_mode_cpu()
    caffe.set_random_seed(seed)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prototxt = Path(tmp) / "net.prototxt"
        prototxt.write_text(str(runnable))
        target = caffe.Net(str(prototxt), caffe.TRAIN)
    renamed = {dst: source[src] for dst, src in mapping.items()}
    copied = surgery.transplant(renamed, target, layers=list(mapping))
    fd, tmp_out = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        target.save(tmp_out)
        os.chmod(tmp_out, 0o644)
        os.replace(tmp_out, out)
    except BaseException:
        if os.path.exists(tmp_out):
            os.unlink(tmp_out)
        raise
    return [(name, mapping[name]) for name in copied]


def main(argv: list[str] | None = None) -> int:
    deeper = [c.name for c in table.CONFIGS.values() if table.initialised_from_a(c)]
    p = argparse.ArgumentParser(prog="vgg-init-from-a", description=__doc__.split("\n\n")[0],
                                epilog="deeper configs: " + ", ".join(deeper))
    p.add_argument("config", type=table.config_argument, help="the deeper config to initialise (B, C, D, E or an alias)")
    p.add_argument("--a-weights", required=True, help="trained net A (.caffemodel)")
    p.add_argument("--profile", choices=sorted(table.PROFILES), default=table.PAPER.name)
    p.add_argument("--net", default=None,
                   help="the deeper net's train_val prototxt (default: <models>/<CONFIG>/train_val.prototxt)")
    p.add_argument("--out", default=None,
                   help="output caffemodel (default: <models>/<CONFIG>/vgg_<CONFIG>_init_from_A.caffemodel)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fillers of the layers not copied")
    args = p.parse_args(argv)
    profile = table.PROFILES[args.profile]
    config = args.config
    if not table.initialised_from_a(config):
        p.error(f"config {config.name} is not deeper than A and trains from random init; "
                f"deeper configs: {', '.join(deeper)}")
    train_val = args.net or generate.train_val_path(profile, config, table.regimes(profile)[0])
    out = args.out or generate.init_from_a_path(profile, config)
    try:
        pairs = build(config, args.a_weights, train_val, out, profile, args.seed)
    except (InitError, surgery.SurgeryError, GenerationError) as exc:
        print(f"vgg-init-from-a: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"vgg-init-from-a: error: {exc}", file=sys.stderr)
        return 1
    copied = {dst for dst, _ in pairs}
    fresh = [name for name in config.conv_names() + list(table.FC_LAYERS) if name not in copied]
    for dst, src in pairs:
        print(f"copied  {dst:8} <- A's {src}")
    print(f"fresh   {', '.join(fresh)} (fillers of {train_val}, seed {args.seed})")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
