"""vgg-net / `python -m prototxt_gen`: write a config's Caffe files (Table 1, Sec. 3.1-3.3).

    vgg-net E                       models/E/*, solvers/E*.prototxt, 4 GPUs x 64
    vgg-net D --gpus 1 --batch 32   one GPU, iter_size 8 keeps the batch at 256
    vgg-net --all                   every config of Table 1 and B-5x5
    vgg-net --list                  the configs with parameter counts and multiply-adds

Paths inside the files are relative to --root (default: the current directory), the
directory `caffe train` is run from.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from data_prep.stats import StatsError, load_stats

from . import table
from .generate import LR_POLICIES, Options, OptionsError, files_for
from .net import INITS, lmdb_path
from .render import GenerationError, write_all

STATS_NONE = "none"


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vgg-net", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="configs: " + ", ".join(table.valid_names()))
    p.add_argument("configs", nargs="*", metavar="CONFIG",
                   help="the paper's config names (A, A-LRN, B, C, D, E, B-5x5) or vgg11/13/16/19")
    p.add_argument("--all", action="store_true", help="write every config")
    p.add_argument("--list", action="store_true", help="list the configs with parameter counts and exit")
    p.add_argument("--profile", choices=sorted(table.PROFILES), default=table.PAPER.name,
                   help="size profile (default: the paper's)")
    p.add_argument("--gpus", type=_count, default=4,
                   help="GPUs of `caffe train -gpu`; the prototxt batch is per GPU (default 4; 0: CPU)")
    p.add_argument("--batch", type=_positive_int, default=None,
                   help="per-GPU batch; iter_size makes up the rest of 256 (default 256/GPUS)")
    p.add_argument("--init", choices=INITS, default="gaussian",
                   help="weight init: the paper's Gaussian, or Glorot's (xavier)")
    p.add_argument("--gaussian-std", type=_positive_float, default=None,
                   help=f"std of the Gaussian init (default {table.PAPER_RECIPE.gaussian_std})")
    p.add_argument("--lr-policy", choices=LR_POLICIES, default="plateau",
                   help="plateau: /10 when validation top-1 stalls (the paper); multistep: fixed drops")
    p.add_argument("--data", default=None,
                   help="dataset dir of `make data` (<DATA>/train/S<S>_lmdb ...; default: the profile's)")
    p.add_argument("--stats", default=None,
                   help="stats.json for mean and colour shift (default: <DATA>/train/stats.json when "
                        f"present, else the authors' published mean); '{STATS_NONE}' forces the defaults")
    p.add_argument("--val-images", type=_positive_int, default=None,
                   help="validation images per test pass: all of the val LMDB's, which must hold exactly these "
                        "when present (default: counted in it)")
    p.add_argument("--root", type=Path, default=Path("."),
                   help="directory the relative paths are written under (default: current directory)")
    p.add_argument("--quiet", action="store_true", help="do not list the files written")
    return p


def _lmdb_entries(path: Path) -> int | None:
    if not (path / "data.mdb").is_file():
        return None
    import lmdb
    with lmdb.open(str(path), readonly=True, lock=False) as env:
        return env.stat()["entries"]


def options_from(args, profile: table.Profile) -> Options:
    data_dir = args.data or profile.data_dir
    data_root = args.root / data_dir
    if args.stats == STATS_NONE:
        stats, source = load_stats(None), None
    elif args.stats is not None:
        stats, source = load_stats(args.stats), args.stats
    elif (data_root / "train" / "stats.json").is_file():
        source = f"{data_dir.rstrip('/')}/train/stats.json"
        stats = load_stats(data_root / "train" / "stats.json")
    else:
        stats, source = load_stats(None), None
    first = table.regimes(profile)[0]
    val_lmdb = lmdb_path(profile, data_dir, "val", profile.lmdb_scale_for(first.test_scale))
    entries = _lmdb_entries(args.root / val_lmdb)
    val_images = args.val_images if args.val_images is not None else entries
    if entries is not None and val_images != entries:
        # A Data layer reads on from where the last test pass stopped: a pass over part of the LMDB
        # would see other images each time, and the plateau schedule would compare unlike passes.
        raise OptionsError(f"--val-images {val_images}: {val_lmdb} holds {entries} images, and every "
                           "test pass must read each of them once (build the val LMDBs of the images "
                           "to validate on, or leave --val-images out)")
    kwargs = dict(gpus=args.gpus, batch=args.batch, init=args.init, gaussian_std=args.gaussian_std,
                  data_dir=data_dir, lr_policy=args.lr_policy, stats=stats, val_images=val_images)
    if source is not None:
        kwargs["stats_source"] = f"measured, from `{source}`"
    return Options(**kwargs)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    profile = table.PROFILES[args.profile]
    if args.list:
        for config in table.CONFIGS.values():
            print(f"{config.name:6} {config.weight_layers:2} weight layers  "
                  f"{table.param_count(config, profile):>12,} parameters  "
                  f"{table.multiply_adds(config, profile) / 1e9:6.2f} G multiply-adds")
        return 0
    if args.all == bool(args.configs):
        p.error("name one or more configs, or --all (configs: " + ", ".join(table.valid_names()) + ")")
    try:
        configs = list(table.CONFIGS.values()) if args.all else [table.resolve(c) for c in args.configs]
    except table.UnknownConfig as exc:
        p.error(str(exc))
    if not args.root.is_dir():
        p.error(f"--root {args.root}: not a directory")
    try:
        options = options_from(args, profile)
        options.validate(profile)
        files: dict[Path, str] = {}
        for config in configs:  # render and validate everything before writing anything
            files.update({args.root / path: text for path, text in files_for(config, profile, options).items()})
    except (OptionsError, table.BatchSplitError) as exc:
        p.error(str(exc))
    except (StatsError, GenerationError) as exc:
        print(f"vgg-net: error: {exc}", file=sys.stderr)
        return 1
    try:
        written = write_all(files)
    except OSError as exc:
        print(f"vgg-net: error: cannot write {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        for path in written:
            print(os.path.relpath(path))
    split = table.batch_split(options.gpus, options.batch, profile.recipe.batch)
    print(f"vgg-net: wrote {len(written)} files for {', '.join(c.name for c in configs)} "
          f"(batch {split.describe()}, init {options.init}, lr policy {options.lr_policy}; "
          f"mean/PCA: {options.stats_source})")
    return 0
