"""`make bench`: every benchmark of issue 8 in one run on this machine, into bench/results.json and
bench/results.md.

1. Training step and inference of every Table 1 config (Sec. 2.1; B-5x5 of Sec. 4.1) at 224x224:
   our Caffe (`caffe time` through prototxt_gen.timing) against the same layers in PyTorch
   (bench/torch_vgg.py), forward, backward, forward+backward, and PyTorch's inference forward.
2. The machine's limit: SGEMM GFLOP/s through the BLAS Caffe links (bench/gemm.py), each config's
   achieved GFLOP/s as a fraction of it, and config D's conv layers one by one: in `caffe time`
   of the whole net (bench/caffe_profile.py), and alone, alternating with the SGEMM so that both
   are measured in the same minute (bench/conv_alone.py).
3. Data: vgg-data against convert_imageset (bench/data_prep_bench.py, data prep's own), and the
   Sec. 3.1 training data layer per core (bench/data_layer.py).
4. Evaluation: dense against 50-crop multi-crop at Q = 256, 384, 512 for D (Sec. 3.2, 4.3;
   bench/eval_bench.py, evaluation's own).

Heavy steps run one at a time, each in its own process, so no two compete for the cores.

    python -m bench.run [--configs A D] [--steps gemm nets profile data eval] [--out bench]
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STEPS = ("gemm", "nets", "profile", "data", "eval")
EVAL_SCALES = (256, 384, 512)
UNITS = ("nets[*].*_ms: milliseconds per batch of `batch` images (results.md shows ms per image); "
         "*_ips: images per second; gemm_gflops: best single-precision GEMM GFLOP/s through Caffe's BLAS")


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------- machine and versions

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    memory = None
    try:
        match = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        memory = round(int(match.group(1)) / 2**20, 1) if match else None
    except OSError:
        pass
    os_name = platform.platform()
    try:
        release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
        os_name = release.get("PRETTY_NAME", os_name).strip('"')
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0))
    return dict(cpu=cpu_model(), cores=cores, memory_gib=memory, os=os_name, kernel=platform.release(),
                load_average_at_start=[round(x, 2) for x in os.getloadavg()],
                summary=f"{cpu_model()}, {cores} cores")


def versions(torch_version: str | None, blas_config: str | None) -> dict:
    import cv2
    import numpy

    from tools import build_caffe, openblas_core

    series = (REPO / "caffe_patches" / "series").read_text().split()
    from prototxt_gen.timing import caffe_binary
    install = Path(os.path.realpath(caffe_binary())).parent.parent.name
    return dict(caffe=f"BVLC {build_caffe.BVLC_COMMIT[:7]} (Debian {build_caffe.DEBIAN_VERSION}) "
                      f"+ caffe_patches 0001-{len(series):04d}, build {install}",
                caffe_patches=series, torch=torch_version, blas=blas_config,
                openblas_kernels=openblas_core.describe(), numpy=numpy.__version__,
                opencv_python=cv2.__version__, python=platform.python_version())


# --------------------------------------------------------------------------- running the pieces

def run_json(command: list[str], what: str) -> dict:
    """Run a benchmark process that prints one JSON object as its last stdout line."""
    run = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if run.returncode != 0:
        raise BenchError(f"{what} failed ({run.returncode}): {run.stderr.strip()[-800:]}")
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    if not lines:
        raise BenchError(f"{what} printed nothing")
    return json.loads(lines[-1])


def iterations_for(config, iterations: int, deep_iterations: int) -> int:
    from prototxt_gen import table
    return deep_iterations if table.multiply_adds(config) >= table.multiply_adds(table.CONFIGS["D"]) else iterations


def train_flops(config, profile=None) -> int:
    """Forward + backward FLOPs of one image: backward computes weight gradients (as many
    multiply-adds as forward) and input gradients (the same, except for conv1_1, whose input is data)."""
    from prototxt_gen import table
    profile = profile or table.PAPER
    first = table.conv_layers(config, profile)[0]
    first_macs = first.multiply_adds
    return 2 * (3 * table.multiply_adds(config, profile) - first_macs)


def bench_nets(configs, batch: int, iterations: int, deep_iterations: int, log=lambda message: None,
               profile=None, root: Path = REPO) -> list[dict]:
    """Caffe (prototxt_gen.timing on the generated first-stage train_val under `root`) and PyTorch
    (bench.torch_vgg in its own process), one config after the other."""
    from prototxt_gen import generate, table, timing

    profile = profile or table.PAPER
    rows = []
    for config in configs:
        n = iterations_for(config, iterations, deep_iterations)
        train_val = Path(root) / generate.train_val_path(profile, config, table.regimes(profile)[0])
        log(f"nets: {config.name}: caffe time, batch {batch}, {n} iterations")
        caffe = timing.time_config(config, profile, train_val, batch, n)
        log(f"nets: {config.name}: PyTorch, batch {batch}, {n} iterations")
        torch = run_json([sys.executable, "-m", "bench.torch_vgg", config.name, "--batch", str(batch),
                          "--iterations", str(n), "--profile", profile.name], f"PyTorch timing of {config.name}")
        rows.append(dict(config=config.name, batch=batch, iterations=n,
                         caffe_fwd_ms=caffe["forward_ms"], caffe_bwd_ms=caffe["backward_ms"],
                         caffe_fwd_bwd_ms=caffe["forward_backward_ms"],
                         torch_fwd_ms=torch["forward_ms"], torch_bwd_ms=torch["backward_ms"],
                         torch_fwd_bwd_ms=torch["forward_backward_ms"], torch_infer_ms=torch["inference_ms"],
                         torch_threads=torch["threads"], torch_version=torch["torch"],
                         multiply_adds=table.multiply_adds(config, profile),
                         train_flops=train_flops(config, profile)))
    return rows


def add_efficiency(rows: list[dict], gemm_limit: float | None) -> None:
    """Achieved GFLOP/s of each net and framework, and its fraction of the GEMM limit."""
    for row in rows:
        fwd_flops = 2.0 * row["multiply_adds"] * row["batch"]
        step_flops = float(row["train_flops"]) * row["batch"]
        for who in ("caffe", "torch"):
            row[f"{who}_fwd_gflops"] = fwd_flops / row[f"{who}_fwd_ms"] / 1e6
            row[f"{who}_fwd_bwd_gflops"] = step_flops / row[f"{who}_fwd_bwd_ms"] / 1e6
            if gemm_limit:
                row[f"{who}_fwd_fraction"] = row[f"{who}_fwd_gflops"] / gemm_limit
                row[f"{who}_fwd_bwd_fraction"] = row[f"{who}_fwd_bwd_gflops"] / gemm_limit
        row["torch_infer_gflops"] = fwd_flops / row["torch_infer_ms"] / 1e6


DATA_PREP_COLUMNS = {"scales": "scales", "convert_imageset img/s": "convert_imageset_ips",
                     "vgg-data img/s": "ours_ips", "ratio": "ratio"}


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _leading_number(cell: str) -> float | None:
    match = re.match(r"[-+]?[0-9][0-9,]*\.?[0-9]*", cell)
    return float(match.group(0).replace(",", "")) if match else None


def parse_data_prep(text: str) -> list[dict]:
    """The rows of bench/data_prep_bench.py's Markdown table (it prints, it returns nothing), read
    by its header: the four columns issue 8 needs under our names, any others under snake_case."""
    rows, header = [], None
    for line in text.splitlines():
        if not line.strip().startswith("|"):
            header = None if rows else header
            continue
        cells = _cells(line)
        if cells and cells[0] == "scales":
            header = cells
            continue
        if header is None or set("".join(cells)) <= set("-: "):
            continue
        row = {}
        for name, cell in zip(header, cells):
            key = DATA_PREP_COLUMNS.get(name) or re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")
            row[key] = [int(s) for s in cell.split()] if key == "scales" else _leading_number(cell)
        if set(DATA_PREP_COLUMNS.values()) <= set(row):
            rows.append(row)
    return rows


def bench_data_prep(images: int, repeat: int, work: Path) -> dict:
    command = [sys.executable, str(REPO / "bench" / "data_prep_bench.py"), "--images", str(images),
               "--repeat", str(repeat), "--work", str(work / "data_prep")]
    run = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if run.returncode != 0:
        raise BenchError(f"bench/data_prep_bench.py failed ({run.returncode}): {run.stderr.strip()[-800:]}")
    rows = parse_data_prep(run.stdout)
    if not rows:
        raise BenchError(f"bench/data_prep_bench.py printed no result rows:\n{run.stdout[-800:]}")
    # the headline: all three scales of Sec. 3.1, what a training set needs
    main = max(rows, key=lambda r: len(r["scales"]))
    header = next((line for line in run.stdout.splitlines() if "JPEG" in line), "")
    return dict(ours_ips=main["ours_ips"], convert_imageset_ips=main["convert_imageset_ips"],
                ratio=main["ratio"], scales=main["scales"], rows=rows, images=images, repeat=repeat,
                setup=header.strip())


def read_eval_csv(path: Path) -> list[dict]:
    """eval_bench.csv (config, test_Q, protocol, images, seconds, images_per_s) as the results' eval list."""
    by_scale: dict[int, dict] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            entry = by_scale.setdefault(int(row["test_Q"]), dict(Q=int(row["test_Q"]), config=row["config"],
                                                                 images=int(row["images"])))
            key = {"dense": "dense_ips", "multi-crop": "multicrop_ips"}[row["protocol"]]
            entry[key] = float(row["images_per_s"])
    rows = [by_scale[q] for q in sorted(by_scale)]
    for row in rows:
        if row.get("dense_ips") and row.get("multicrop_ips"):
            row["ratio"] = row["dense_ips"] / row["multicrop_ips"]
    return rows


def bench_eval(images: int, work: Path, model: str = "D", scales=EVAL_SCALES) -> list[dict]:
    """bench/eval_bench.py (a config name or a deploy prototxt), read back from the CSV it writes."""
    out = work / "eval"
    csv_path = out / "eval_bench.csv"
    csv_path.unlink(missing_ok=True)
    command = [sys.executable, str(REPO / "bench" / "eval_bench.py"), "--config", model, "--images", str(images),
               "--scales", *map(str, scales), "--out", str(out)]
    run = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if run.returncode != 0 or not csv_path.is_file():
        raise BenchError(f"bench/eval_bench.py failed ({run.returncode}): {run.stderr.strip()[-800:]}")
    return read_eval_csv(csv_path)


def bench_profile(batch: int, iterations: int, gemm: dict, config_name: str = "D") -> dict:
    from bench import caffe_profile
    from prototxt_gen import table

    config = table.resolve(config_name)
    layers = caffe_profile.layer_times(config, batch, iterations)
    rows = caffe_profile.conv_rows(config, batch, layers, gemm["gemm_gflops"], gemm.get("conv"))
    return dict(summary=caffe_profile.summary(config, batch, layers, rows, gemm["gemm_gflops"]),
                conv=rows, layers=layers, iterations=iterations)


# --------------------------------------------------------------------------- results

REQUIRED = {
    "machine": dict, "versions": dict, "gemm_gflops": (int, float), "nets": list, "data_prep": dict,
    "data_layer_ips_per_core": (int, float), "eval": list,
}
NET_KEYS = ("config", "batch", "caffe_fwd_ms", "caffe_bwd_ms", "torch_fwd_ms", "torch_bwd_ms")
EVAL_KEYS = ("Q", "dense_ips", "multicrop_ips")


def schema_errors(results: dict) -> list[str]:
    """What a complete results.json of issue 8 lacks (empty: complete)."""
    errors = []
    for key, kind in REQUIRED.items():
        if key not in results:
            errors.append(f"missing {key}")
        elif not isinstance(results[key], kind) or isinstance(results[key], bool):
            errors.append(f"{key} is {type(results[key]).__name__}")
    for i, row in enumerate(results.get("nets") or []):
        errors += [f"nets[{i}] lacks {k}" for k in NET_KEYS if k not in row]
    if isinstance(results.get("data_prep"), dict):
        errors += [f"data_prep lacks {k}" for k in ("ours_ips", "convert_imageset_ips")
                   if k not in results["data_prep"]]
    for i, row in enumerate(results.get("eval") or []):
        errors += [f"eval[{i}] lacks {k}" for k in EVAL_KEYS if k not in row]
    return errors


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv=None) -> int:
    from bench.report import markdown
    from prototxt_gen import table

    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=list(table.CONFIGS), metavar="CONFIG")
    p.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    p.add_argument("--batch", type=int, default=8, help="images per net pass (default 8, as issue 8 asks)")
    p.add_argument("--iterations", type=int, default=3, help="timed passes per config (default 3)")
    p.add_argument("--deep-iterations", type=int, default=2,
                   help="timed passes for configs with at least D's multiply-adds (default 2)")
    p.add_argument("--gemm-sizes", type=int, nargs="+", default=[2048, 4096])
    p.add_argument("--conv-rounds", type=int, default=5,
                   help="rounds of D's conv layers alone alternating with the largest SGEMM (default 5)")
    p.add_argument("--data-images", type=int, default=1000,
                   help="JPEGs for the data benchmarks (default 1000: fewer and start-up time dominates)")
    p.add_argument("--data-repeat", type=int, default=1, help="best of N runs of each data tool (default 1)")
    p.add_argument("--data-layer-batches", type=int, default=20)
    p.add_argument("--eval-images", type=int, default=1, help="photographs per protocol and scale (default 1)")
    p.add_argument("--out", type=Path, default=REPO / "bench", help="where results.json/.md go (default bench/)")
    p.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "run",
                   help="scratch (default bench/work/run: apart from bench-data's and eval_bench's own runs)")
    args = p.parse_args(argv)
    for name in ("batch", "iterations", "deep_iterations", "conv_rounds", "data_images", "data_repeat",
                 "data_layer_batches", "eval_images"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be positive")
    try:
        configs = [table.resolve(name) for name in args.configs]
    except table.UnknownConfig as exc:
        p.error(str(exc))
    # asked in a child: torch stays out of this process, which only orchestrates
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                           capture_output=True, text=True)
    torch_version = probe.stdout.strip() if probe.returncode == 0 else None
    if torch_version is None and "nets" in args.steps:
        print("bench: error: PyTorch is not installed in this venv (`make bench` installs torch==2.13.0)",
              file=sys.stderr)
        return 1

    started = time.monotonic()
    os.environ.setdefault("GLOG_minloglevel", "2")

    def log(message: str) -> None:
        print(f"[bench {time.monotonic() - started:6.0f}s] {message}", file=sys.stderr, flush=True)

    results: dict = dict(machine=machine(), units=UNITS, steps=args.steps,
                         started=datetime.datetime.now().astimezone().isoformat(timespec="seconds"))
    args.work.mkdir(parents=True, exist_ok=True)
    try:
        gemm = None
        if "gemm" in args.steps or "profile" in args.steps:
            log("gemm: SGEMM through Caffe's BLAS")
            command = [sys.executable, "-m", "bench.gemm", "--sizes", *map(str, args.gemm_sizes)]
            if "profile" in args.steps:  # D's conv GEMMs alone, for the per-layer profile
                command += ["--conv-config", "D", "--batch", str(args.batch)]
            gemm = run_json(command, "bench.gemm")
            results["gemm_gflops"] = gemm["gemm_gflops"]
            results["gemm"] = {k: v for k, v in gemm.items() if k != "conv"}
            results["gemm_conv"] = gemm.get("conv", [])
        results["versions"] = versions(torch_version, gemm and gemm["blas_config"])
        if "nets" in args.steps:
            results["nets"] = bench_nets(configs, args.batch, args.iterations, args.deep_iterations, log)
            add_efficiency(results["nets"], results.get("gemm_gflops"))
            for row in results["nets"]:
                row["machine"] = results["machine"]["summary"]
        if "profile" in args.steps:
            log(f"profile: caffe time per layer of D, batch {args.batch}")
            results["profile"] = bench_profile(args.batch, args.deep_iterations, gemm)
            log(f"profile: D's conv layers alone, alternating with SGEMM, {args.conv_rounds} rounds")
            results["conv_alone"] = run_json(
                [sys.executable, "-m", "bench.conv_alone", "--batch", str(args.batch),
                 "--rounds", str(args.conv_rounds), "--gemm-size", str(max(args.gemm_sizes))], "bench.conv_alone")
        if "data" in args.steps:
            log(f"data: vgg-data against convert_imageset, {args.data_images} JPEGs")
            results["data_prep"] = bench_data_prep(args.data_images, args.data_repeat, args.work)
            log("data: the training data layer on one core")
            layer = run_json([sys.executable, "-m", "bench.data_layer", "--images", str(args.data_images),
                              "--batches", str(args.data_layer_batches), "--work", str(args.work)],
                             "bench.data_layer")
            results["data_layer_ips_per_core"] = layer["images_per_s_per_core"]
            results["data_layer"] = layer
        if "eval" in args.steps:
            log(f"eval: dense and multi-crop, D, Q={EVAL_SCALES}, {args.eval_images} image(s)")
            results["eval"] = bench_eval(args.eval_images, args.work)
    except (BenchError, RuntimeError, OSError, KeyError, ValueError) as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    results["seconds"] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["settings"] = dict(batch=args.batch, iterations=args.iterations, deep_iterations=args.deep_iterations,
                               conv_rounds=args.conv_rounds, data_images=args.data_images, data_repeat=args.data_repeat,
                               eval_images=args.eval_images, gemm_sizes=args.gemm_sizes)
    missing = schema_errors(results)
    write_atomic(args.out / "results.json", json.dumps(results, indent=1) + "\n")
    write_atomic(args.out / "results.md", markdown(results))
    log(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}"
        + (f" (partial run: {'; '.join(missing)})" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
