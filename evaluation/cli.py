"""vgg-eval: the paper's testing protocols (Sec. 3.2, 4) on an image list, reported as Tables 3-6.

  vgg-eval run --model D --weights W.caffemodel --root IMAGES --list val.txt --out OUT
      Dense and/or multi-crop evaluation at each test scale; saves one posteriors npz per
      (model, protocol, Q) under OUT/posteriors/ and writes OUT/report.md and OUT/results.csv
      from every npz there (so runs of several models into one OUT give the ensembles).
  vgg-eval report OUT_A OUT_B ... --out OUT
      The report again from saved posteriors (directories or npz files), nets not run.
  vgg-eval caffe-net --model D --weights W.caffemodel --scale 384
      Dense testing inside `caffe test` (Sec. 3.3): test_dense_Q<Q>.prototxt and the fc->conv
      weights it loads.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from . import posteriors as post
from .scales import ScaleError, format_test_scales, parse_test_scales, parse_train_scale, regime_in_name

PROTOCOL_CHOICES = {"dense": (post.DENSE,), "multicrop": (post.MULTICROP,), "both": (post.DENSE, post.MULTICROP)}


class CliError(Exception):
    pass


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_mean(text: str | None) -> tuple[tuple[float, float, float], str]:
    """--mean: 'B G R' values, or a stats.json written by data prep; default the authors' mean."""
    from data_prep.stats import StatsError, load_stats

    if text is None:
        return load_stats(None).mean_bgr, "the authors' published mean"
    words = text.replace(",", " ").split()
    if len(words) == 3:
        try:
            return tuple(float(w) for w in words), "given BGR values"
        except ValueError:
            pass
    try:
        return load_stats(text).mean_bgr, text
    except StatsError as exc:
        raise CliError(f"--mean: expected 'B G R' or a stats.json ({exc})") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vgg-eval", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,report,caffe-net}")

    run = commands.add_parser("run", help="evaluate a model on an image list (dense, multi-crop or both)")
    run.add_argument("--model", required=True, help="config (A..E, vgg16, ...) or a deploy/deploy_dense prototxt")
    run.add_argument("--weights", required=True, help="trained caffemodel (ours or the authors', V1 or current)")
    run.add_argument("--root", required=True, help="image root the list's paths are relative to")
    run.add_argument("--list", required=True, help="Caffe list file: 'relative/path label' per line")
    run.add_argument("--out", required=True, help="output directory (posteriors/, report.md, results.csv)")
    run.add_argument("--protocol", choices=sorted(PROTOCOL_CHOICES), default="both")
    run.add_argument("--scales", help="test scales Q, e.g. '256 384 512' (default: from the training scale)")
    run.add_argument("--train-scale", help="training S of the weights: 256, 384, 256-512 or a regime name "
                     "(default: read from a snapshot name such as vgg_D_S256-512_iter_N.caffemodel)")
    run.add_argument("--single-scale", action="store_true",
                     help="default scales: only Q of Sec. 4.1 (else the three of Sec. 4.2, which include it)")
    run.add_argument("--batch-size", type=_positive, default=10,
                     help="224x224 crops per forward pass (dense: the same number of pixels) [10]")
    run.add_argument("--mean", help="mean pixel: 'B G R' or a stats.json (default: the authors' BGR mean)")
    run.add_argument("--num-classes", type=_positive, help="classes of the model (default: the weights' fc8 width)")
    run.add_argument("--name", help="model name in the tables (default: the config or prototxt name)")
    run.add_argument("--no-flip", action="store_true", help="dense: do not add the mirror image")
    run.add_argument("--limit", type=_positive, help="evaluate only the first N listed images")
    run.add_argument("--gpu", type=int, help="GPU id (default: CPU)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    report = commands.add_parser("report", help="Tables 3-6 from saved posteriors (no nets run)")
    report.add_argument("inputs", nargs="+", help="run directories (their posteriors/*.npz) or npz files")
    report.add_argument("--out", required=True, help="where report.md and results.csv go")
    report.add_argument("--title", default="Evaluation")

    caffe_net = commands.add_parser("caffe-net", help="dense test net for `caffe test` and its fc->conv weights")
    caffe_net.add_argument("--model", required=True, help="config or deploy/deploy_dense prototxt")
    caffe_net.add_argument("--weights", help="caffemodel to convert into the dense net's weights")
    caffe_net.add_argument("--scale", type=_positive, required=True, help="test scale Q")
    caffe_net.add_argument("--source", help="LMDB of full images (default: the val LMDB `make data` writes for Q)")
    caffe_net.add_argument("--data", default=None, help="dataset directory for the default --source")
    caffe_net.add_argument("--mean", help="mean pixel: 'B G R' or a stats.json (default: the authors' BGR mean)")
    caffe_net.add_argument("--num-classes", type=_positive, help="classes (default: the weights' fc8 width, or 1000)")
    caffe_net.add_argument("--out", help="directory for the files (default: models/<CONFIG>/ or the prototxt's)")
    return parser


# --------------------------------------------------------------------------- run

def _scales(args) -> tuple[tuple[int, ...], str]:
    train = parse_train_scale(args.train_scale) if args.train_scale else regime_in_name(Path(args.weights).name)
    if args.scales:
        return parse_test_scales(args.scales), train.label if train else ""
    if train is None:
        raise CliError("no test scales: give --scales, or --train-scale so they follow the training regime")
    return train.default_test_scales(multi_scale=not args.single_scale), train.label


def _init_caffe(gpu: int | None):
    os.environ.setdefault("GLOG_minloglevel", "2")
    import caffe

    if gpu is None:
        caffe.set_mode_cpu()
    else:
        caffe.set_device(gpu)
        caffe.set_mode_gpu()
    return caffe


def command_run(args) -> int:
    from .images import read_image_list
    from .nets import load_nets, resolve_model
    from .protocols import PROTOCOL_FUNCTIONS
    from .report import write_report

    scales, train_label = _scales(args)
    mean_bgr, mean_source = parse_mean(args.mean)
    root = Path(args.root)
    if not root.is_dir():
        raise CliError(f"image root not found: {root}")
    listing = read_image_list(args.list, limit=args.limit)
    _init_caffe(args.gpu)
    spec = resolve_model(args.model)
    protocols = PROTOCOL_CHOICES[args.protocol]
    nets = load_nets(spec, args.weights, need_dense=post.DENSE in protocols,
                     need_crop=post.MULTICROP in protocols, num_classes=args.num_classes)
    outside = [item for item in listing if item.label >= nets.num_classes]
    if outside:
        raise CliError(f"{args.list}: label {outside[0].label} of {outside[0].path} is outside the model's "
                       f"{nets.num_classes} classes")
    name = args.name or spec.name
    out = Path(args.out)
    print(f"vgg-eval: {name} (S={train_label or '?'}) from {args.weights}; {len(listing)} images; "
          f"{', '.join(protocols)} at Q={format_test_scales(scales)}; mean {mean_source}", file=sys.stderr)
    for protocol in protocols:
        net = nets.dense if protocol == post.DENSE else nets.crop
        for scale in scales:
            options = dict(batch_size=args.batch_size, crop=spec.crop, show_progress=not args.quiet)
            if protocol == post.DENSE:
                options["flip"] = not args.no_flip
            scored = PROTOCOL_FUNCTIONS[protocol](net, listing, root, scale, mean_bgr, **options)
            run = post.Posteriors(model=name, train_scale=train_label, protocol=protocol, scales=(scale,),
                                  images=scored.images, labels=scored.labels,
                                  probs=scored.probs if scored.images else np.zeros((0, nets.num_classes)),
                                  skipped=scored.skipped, seconds=scored.seconds,
                                  flip=protocol != post.DENSE or not args.no_flip, weights=str(args.weights))
            path = post.save(run, out / "posteriors" / run.file_name())
            print(f"vgg-eval: {protocol} Q={scale}: {run.num_scored} scored, {len(run.skipped)} skipped, "
                  f"{run.images_per_second:.2f} images/s -> {path}", file=sys.stderr)
    runs = [post.load(p) for p in sorted((out / "posteriors").glob("*.npz"))]
    write_report(runs, out, title=f"Evaluation: {', '.join(sorted({r.key for r in runs}))}")
    print(f"vgg-eval: wrote {out / 'report.md'} and {out / 'results.csv'}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- report

def command_report(args) -> int:
    from .report import write_report

    files: list[Path] = []
    for item in map(Path, args.inputs):
        if item.is_dir():
            found = sorted((item / "posteriors").glob("*.npz")) or sorted(item.glob("*.npz"))
            if not found:
                raise CliError(f"{item}: no posteriors (*.npz) in it or in its posteriors/")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise CliError(f"not found: {item}")
    runs = [post.load(p) for p in dict.fromkeys(files)]
    write_report(runs, args.out, title=args.title)
    print(f"vgg-eval: {len(runs)} runs -> {Path(args.out) / 'report.md'}, {Path(args.out) / 'results.csv'}",
          file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- caffe-net

def command_caffe_net(args) -> int:
    from .caffe_test_net import write_caffe_test_net

    mean_bgr, _ = parse_mean(args.mean)
    _init_caffe(None)
    written = write_caffe_test_net(args.model, args.scale, weights=args.weights, source=args.source,
                                   data_dir=args.data, mean_bgr=mean_bgr, num_classes=args.num_classes,
                                   out_dir=args.out)
    for line in written.summary():
        print(line)
    return 0


COMMANDS = {"run": command_run, "report": command_report, "caffe-net": command_caffe_net}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from data_prep.stats import StatsError
    from prototxt_gen.surgery import SurgeryError

    from .images import ImageListError
    from .nets import ModelError
    from .protocols import EvaluationError

    try:
        return COMMANDS[args.command](args)
    except (CliError, ScaleError, ImageListError, ModelError, SurgeryError, StatsError, EvaluationError,
            post.PosteriorsError) as exc:
        print(f"vgg-eval: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vgg-eval: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
