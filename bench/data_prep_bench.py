"""Throughput of vgg-data against Caffe's `convert_imageset` on the same images (issue 4).

Builds the same image set (default: 1000 JPEGs of 500x375, ImageNet's most common size, at
quality 90: crops of the photographs scikit-image ships, or synthetic photograph-like images
with --synthetic) with
  - `convert_imageset --encoded --resize_height=S --resize_width=S` (warps to SxS, one core),
    once per scale;
  - `vgg-data --scales ...` (isotropic, smallest side S, all cores), one pass for all scales;
and prints images/s of each and the ratio, for one scale (256) and for the three scales of
Sec. 3.1 (256 384 512: convert_imageset needs a process per scale). images/s is from the wall-clock
time of the whole run, start-up included, the best of --repeat runs; the page cache is
warmed first. On a shared machine wall clock depends on the neighbours, so the CPU time
per image (user + system, all processes of the run) is printed too, and the ratio it allows
when vgg-data's workers each have a core to themselves (convert_imageset uses one).

    python bench/data_prep_bench.py [--images 2000] [--repeat 2] [--synthetic]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from data_prep.build import default_workers  # noqa: E402
from data_prep.synthetic import natural_image  # noqa: E402

PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "motorcycle_left.png",
          "hubble_deep_field.jpg", "retina.jpg", "immunohistochemistry.png")
WIDTH, HEIGHT = 500, 375


def photographs() -> list[np.ndarray]:
    spec = importlib.util.find_spec("skimage")
    if spec is None:
        return []
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    images = [cv2.imread(str(data / name), cv2.IMREAD_COLOR) for name in PHOTOS if (data / name).is_file()]
    return [image for image in images if image is not None]


def make_images(work: Path, count: int, synthetic: bool) -> tuple[Path, Path, str]:
    sources = [] if synthetic else photographs()
    kind = (f"crops of {len(sources)} scikit-image photographs" if sources
            else "synthetic photograph-like images")
    root = work / ("synthetic" if not sources else "photos")
    listing = work / f"{root.name}-{count}.txt"
    if listing.is_file():
        return root, listing, kind
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(count):
        if sources:
            photo = sources[i % len(sources)]
            h, w = photo.shape[:2]
            crop_w = int(min(w, h * 4 / 3) * rng.uniform(0.6, 1.0))
            crop_h = int(crop_w * 3 / 4)
            y, x = int(rng.integers(0, h - crop_h + 1)), int(rng.integers(0, w - crop_w + 1))
            crop = photo[y:y + crop_h, x:x + crop_w]
            interpolation = cv2.INTER_AREA if crop_w > WIDTH else cv2.INTER_CUBIC
            image = cv2.resize(crop, (WIDTH, HEIGHT), interpolation=interpolation)
            if rng.random() < 0.5:
                image = image[:, ::-1]
        else:
            image = natural_image(rng, HEIGHT, WIDTH)
        name = f"{i:05d}.jpg"
        cv2.imwrite(str(root / name), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        lines.append(f"{name} {i % 1000}\n")
    listing.write_text("".join(lines))
    return root, listing, kind


def timed(command: list[str], env=None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and every process it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"data_prep_bench: {command[0]} failed:\n{result.stderr[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def best(runs) -> tuple[float, float]:
    """The fastest run's wall time, and the least CPU time of any run."""
    runs = list(runs)
    return min(w for w, _ in runs), min(c for _, c in runs)


def convert_imageset_seconds(tool: str, root: Path, listing: Path, scales, out: Path) -> tuple[float, float]:
    env = dict(os.environ, GLOG_minloglevel="2")
    wall = cpu = 0.0
    for s in scales:
        db = out / f"convert_imageset_S{s}"
        shutil.rmtree(db, ignore_errors=True)
        w, c = timed([tool, "--encoded", f"--resize_height={s}", f"--resize_width={s}",
                      f"{root}/", str(listing), str(db)], env)
        wall, cpu = wall + w, cpu + c
        shutil.rmtree(db, ignore_errors=True)
    return wall, cpu


def vgg_data_seconds(root: Path, listing: Path, scales, out: Path, workers: int) -> tuple[float, float]:
    target = out / "vgg_data"
    shutil.rmtree(target, ignore_errors=True)
    seconds = timed([sys.executable, "-m", "data_prep", "--root", str(root), "--list", str(listing),
                     "--out", str(target), "--scales", *map(str, scales), "--workers", str(workers),
                     "--no-progress", "--max-bad-fraction", "0"])
    shutil.rmtree(target, ignore_errors=True)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=2, help="best of N runs of each tool (default 2)")
    parser.add_argument("--workers", type=int, default=0, help="vgg-data workers (default: one per core)")
    parser.add_argument("--synthetic", action="store_true", help="synthetic images instead of photographs")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "data_prep")
    args = parser.parse_args(argv)

    tool = shutil.which("convert_imageset", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                                    os.environ.get("PATH", "")]))
    if tool is None:
        raise SystemExit("data_prep_bench: Caffe's convert_imageset is not installed (run `make setup`)")
    args.work.mkdir(parents=True, exist_ok=True)
    root, listing, kind = make_images(args.work, args.images, args.synthetic)
    for path in root.iterdir():  # warm the page cache for both tools
        path.read_bytes()
    workers = args.workers or default_workers()

    print(f"{args.images} JPEGs of {WIDTH}x{HEIGHT} (quality 90, {kind}); {os.cpu_count()} CPUs"
          f" (load average {os.getloadavg()[0]:.1f} before), vgg-data with {workers} workers;"
          f" best of {args.repeat} runs")
    print("| scales | convert_imageset img/s | vgg-data img/s | ratio | CPU ms/img convert_imageset |"
          " CPU ms/img vgg-data | ratio ceiling with the cores free |")
    print("|---|---|---|---|---|---|---|")
    for scales in ([256], [256, 384, 512]):
        caffe_wall, caffe_cpu = best(convert_imageset_seconds(tool, root, listing, scales, args.work)
                                     for _ in range(args.repeat))
        ours_wall, ours_cpu = best(vgg_data_seconds(root, listing, scales, args.work, workers)
                                   for _ in range(args.repeat))
        processes = f"{len(scales)} processes" if len(scales) > 1 else "1 process"
        print(f"| {' '.join(map(str, scales))} | {args.images / caffe_wall:.1f} ({processes}) |"
              f" {args.images / ours_wall:.1f} (1 process) | {caffe_wall / ours_wall:.2f}x |"
              f" {1e3 * caffe_cpu / args.images:.2f} | {1e3 * ours_cpu / args.images:.2f} |"
              f" {min(workers, os.cpu_count() or 1) * caffe_cpu / ours_cpu:.2f}x |", flush=True)
    print(f"(load average {os.getloadavg()[0]:.1f} after)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
