"""Images per second, per core, of the training data layer of Sec. 3.1: Caffe's Data layer reading
vgg-data's S=512 LMDB through the transform of the multi-scale regime (S drawn per image from
[256, 512], random 224 crop, mirror, mean, PCA colour shift: patch 0005), exactly as the
generated train_val_S256-512.prototxt of config D asks for it.

Caffe's Data layer decodes and transforms in one prefetch thread, so the process is pinned to one
core and the rate it reaches is the per-core figure: cores a training run needs for its data =
(training images/s) / (this). The first batches come from the prefetch queue filled while the
net was built, so they are skipped before timing.

    python -m bench.data_layer [--images 200] [--batches 20]     # prints JSON
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WORK = REPO / "bench" / "work"
CONFIG, REGIME = "D", "S256-512"


def train_data_layer(source: str, batch: int, config_name: str = CONFIG, regime_name: str = REGIME):
    """The TRAIN Data layer of the generated train_val net, reading `source`: a NetParameter."""
    from caffe.proto import caffe_pb2

    from prototxt_gen import generate, table
    from prototxt_gen.render import parse

    profile = table.PAPER
    regime = next(r for r in table.regimes(profile) if r.name == regime_name)
    path = REPO / generate.train_val_path(profile, table.resolve(config_name), regime)
    full = parse(path.read_text(), "NetParameter", str(path))
    train = [layer for layer in full.layer if layer.type == "Data"
             and any(rule.phase == caffe_pb2.TRAIN for rule in layer.include)]
    if len(train) != 1:
        raise ValueError(f"{path}: expected one TRAIN Data layer, found {len(train)}")
    out = caffe_pb2.NetParameter()
    out.name = f"{full.name}_data_{regime_name}"
    layer = out.layer.add()
    layer.CopyFrom(train[0])
    layer.data_param.source = str(source)
    layer.data_param.batch_size = batch
    return out


def build_lmdb(work: Path, images: int, scale: int = 512) -> Path:
    """vgg-data's LMDB at `scale` of data_prep_bench's image set (the same JPEGs it times)."""
    from bench.data_prep_bench import make_images

    images_dir = work / "data_prep"
    images_dir.mkdir(parents=True, exist_ok=True)
    root, listing, _ = make_images(images_dir, images, synthetic=False)
    out = work / "data_layer" / f"lmdb-{images}"
    lmdb = out / f"S{scale}_lmdb"
    if not lmdb.is_dir():
        shutil.rmtree(out, ignore_errors=True)
        run = subprocess.run([sys.executable, "-m", "data_prep", "--root", str(root), "--list", str(listing),
                              "--out", str(out), "--scales", str(scale), "--no-progress"],
                             capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"vgg-data failed: {run.stderr.strip()[-500:]}")
    return lmdb


def images_per_second(net_param, batches: int, skip: int) -> float:
    """Forward the data-only net: `skip` batches (prefetched ones) untimed, then `batches` timed."""
    import caffe

    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(str(net_param))
    try:
        data_net = caffe.Net(f.name, caffe.TRAIN)
    finally:
        os.unlink(f.name)
    batch = net_param.layer[0].data_param.batch_size
    for _ in range(skip):
        data_net.forward()
    start = time.perf_counter()
    for _ in range(batches):
        data_net.forward()
    return batches * batch / (time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.data_layer", description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=200, help="images in the LMDB (default 200)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--batches", type=int, default=20, help="timed batches (default 20)")
    p.add_argument("--work", type=Path, default=DEFAULT_WORK)
    args = p.parse_args(argv)
    if min(args.images, args.batch, args.batches) < 1:
        p.error("--images, --batch and --batches must be positive")
    core = min(os.sched_getaffinity(0))
    # before Caffe (and OpenCV) start threads: they inherit the mask
    os.sched_setaffinity(0, {core})
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        lmdb = build_lmdb(args.work, args.images)
        net_param = train_data_layer(lmdb, args.batch)
        # the prefetch queue (DataParameter.prefetch, 4 by default) fills while the net is built
        skip = net_param.layer[0].data_param.prefetch + 1
        ips = images_per_second(net_param, args.batches, skip)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"bench.data_layer: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(dict(images_per_s_per_core=ips, core=core, batch=args.batch, batches=args.batches,
                          lmdb_images=args.images, config=CONFIG, regime=REGIME,
                          transform="S in [256, 512], crop 224, mirror, mean, colour shift")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
