"""Throughput of the two testing protocols of Sec. 3.2 / 4.3 on this machine: dense vs 50-crop
multi-crop, images per second, for a full-size config (default D) at each test scale Q.

Speed does not depend on the weights' values, so the nets get seeded random weights; the
images are real photographs (those scikit-image ships, or --root/--list). Prints a Markdown
table and writes it with a CSV under bench/work/.

    python bench/eval_bench.py --config D --scales 256 384 512 --images 4
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "motorcycle_left.png",
          "hubble_deep_field.jpg", "camera.png", "retina.jpg")


def photo_list(work: Path, count: int) -> tuple[Path, Path]:
    spec = importlib.util.find_spec("skimage")
    if spec is None:
        raise SystemExit("eval_bench: scikit-image (for its photographs) is not installed; give --root/--list")
    source = Path(list(spec.submodule_search_locations)[0]) / "data"
    root = work / "photos"
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(count):
        name = PHOTOS[i % len(PHOTOS)]
        shutil.copy(source / name, root / name)
        lines.append(f"{name} {i % 1000}\n")
    (work / "photos.txt").write_text("".join(lines))
    return root, work / "photos.txt"


def randomize(net, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = rng.standard_normal(blob.data.shape, dtype=np.float32) * 0.01


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="D")
    parser.add_argument("--scales", type=int, nargs="+", default=[256, 384, 512])
    parser.add_argument("--images", type=int, default=4, help="photographs to score (default 4)")
    parser.add_argument("--protocols", nargs="+", default=["dense", "multi-crop"], choices=["dense", "multi-crop"])
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--root")
    parser.add_argument("--list")
    parser.add_argument("--out", default=str(REPO / "bench" / "work"))
    args = parser.parse_args(argv)

    os.environ.setdefault("GLOG_minloglevel", "2")
    import caffe

    from evaluation.images import read_image_list
    from evaluation.nets import instantiate, resolve_model, with_num_classes
    from evaluation.protocols import PROTOCOL_FUNCTIONS

    caffe.set_mode_cpu()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root, listing = (Path(args.root), Path(args.list)) if args.root else photo_list(out, args.images)
    images = read_image_list(listing, limit=args.images)
    spec = resolve_model(args.config)
    nets = {}
    if "dense" in args.protocols:
        nets["dense"] = instantiate(with_num_classes(spec.dense, 1000))
    if "multi-crop" in args.protocols:
        nets["multi-crop"] = instantiate(with_num_classes(spec.fc, 1000))
    for seed, net in enumerate(nets.values()):
        randomize(net, seed)
    mean = (103.939, 116.779, 123.68)
    rows = []
    print(f"eval_bench: config {spec.name}, {len(images)} images, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs", file=sys.stderr)
    for scale in args.scales:
        for protocol in args.protocols:
            options = dict(batch_size=args.batch_size, crop=spec.crop, show_progress=True)
            start = time.monotonic()
            scored = PROTOCOL_FUNCTIONS[protocol](nets[protocol], images, root, scale, mean, **options)
            seconds = time.monotonic() - start
            rows.append(dict(config=spec.name, test_Q=scale, protocol=protocol, images=len(scored.images),
                             seconds=round(seconds, 2), images_per_s=round(len(scored.images) / seconds, 4)))
    header = "| config | test Q | protocol | images | seconds | images/s |"
    lines = [header, "|---|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['test_Q']} | {r['protocol']} | {r['images']} | {r['seconds']} | "
              f"{r['images_per_s']} |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    (out / "eval_bench.md").write_text(text)
    with (out / "eval_bench.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
