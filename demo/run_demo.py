"""`make demo`: the paper's pipeline end to end on real images, on the CPU, at a reduced size.

Simonyan & Zisserman (ICLR 2015), Sec. 3.1 (training), 3.2 (testing) and 4 (Tables 3-6), run
with the real `caffe` binary and pycaffe on Fashion-MNIST (Debian's dataset-fashion-mnist:
60,000 training and 10,000 test images of clothing, 10 classes), with the reduced profile
`mini` of prototxt_gen.table. The stages, each reused when its outputs are up to date:

  import      Fashion-MNIST IDX files -> PNG image roots + Caffe list files (vgg-fashion-mnist)
  data        one LMDB per training scale S + mean pixel and colour PCA (vgg-data), train and test
  nets        train_val / deploy / dense deploy nets and solvers of A and D (vgg-net --profile mini)
  timing      `caffe time` of each config's training net
  train A     `caffe train`, random (Glorot) init, S=28
  init D      D's first four convs and three FC layers from trained A (vgg-init-from-a, Sec. 3.1)
  train D     `caffe train` at S=28, then fine-tuned at S=32 and at S in [28, 32] (Sec. 3.1 chain)
  evaluate    dense (single- and multi-scale), multi-crop, combined (vgg-eval run, Sec. 3.2, 4)
  report      demo/report.md, demo/results.csv, demo/curves_*.png (Tables 3-6, curves, times)

Everything it makes goes under --work (default demo/work, git-ignored); the report under --out
(default demo/). An interrupted `caffe train` resumes from its latest .solverstate.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import plan as plans
from .stages import (EVAL_ENV, Runner, StageError, format_seconds, last_progress_line, write_json, write_lines,
                     write_text)

PROG = "make demo"
REPO = Path(__file__).resolve().parent.parent
WORK_MARKER = ".vgg-demo-work"
CONFIGS = ("A", "D")
INIT = "xavier"  # see plan.py: the paper's N(0, 1e-2) does not train at width / 8 (table.gaussian_gain)


def _python() -> str:
    return sys.executable


def _caffe() -> str:
    from prototxt_gen.timing import caffe_binary
    return caffe_binary()


class Demo:
    """The stages, their parameters and paths; `run()` runs them in order."""

    def __init__(self, plan: plans.Plan, work: Path, out: Path, source: str, force: bool, jobs: int,
                 stream=None):
        from prototxt_gen import generate, table

        self.plan, self.work, self.out, self.source = plan, work, out, source
        self.jobs = jobs
        self.runner = Runner(work, force=force, slots=jobs, stream=stream)
        self.profile = plans.PROFILE
        self.table, self.generate = table, generate
        self.regimes = {r.name: r for r in table.regimes(self.profile)}
        self.images = work / "fashion-mnist"
        self.data_dir = self.profile.data_dir  # relative to work, as the generated nets say
        self.started = time.monotonic()

    # ------------------------------------------------------------------ paths (relative to work)
    def split_list(self, split: str) -> str:
        limit = self.plan.train_images if split == "train" else self.plan.test_images
        return f"fashion-mnist/{split}.txt" if limit is None else f"fashion-mnist/{split}_first{limit}.txt"

    def val_list(self) -> str:
        """The images `caffe train` validates on: the first val_images of the test split. Its LMDBs
        hold these alone, so that each validation pass, which reads on from where the last one
        stopped, sees the same images, and the plateau schedule compares like with like."""
        return f"fashion-mnist/test_first{self._val_images()}_val.txt"

    def split_dir(self, split: str) -> str:
        return f"{self.data_dir}/{'val' if split == 'test' else split}"

    def config(self, name: str):
        return self.table.resolve(name)

    def solver(self, stage: plans.TrainStage) -> str:
        return f"{self.profile.solvers_dir}/demo/{stage.config}_{stage.regime}.prototxt"

    def snapshot_prefix(self, stage: plans.TrainStage) -> str:
        return self.generate.snapshot_prefix(self.profile, self.config(stage.config), self.regimes[stage.regime])

    def final_weights(self, stage: plans.TrainStage) -> str:
        return f"{self.snapshot_prefix(stage)}_iter_{stage.iterations}.caffemodel"

    def init_weights(self, config: str) -> str:
        return self.generate.init_from_a_path(self.profile, self.config(config))

    def start_weights(self, stage: plans.TrainStage) -> tuple[str | None, str | None]:
        """(weights file, key of the stage that makes it) a training stage starts from."""
        chain = self.plan.chain(stage.config)
        index = chain.index(stage)
        if index > 0:
            return self.final_weights(chain[index - 1]), chain[index - 1].key
        if self.table.initialised_from_a(self.config(stage.config)):
            return self.init_weights(stage.config), f"init_{stage.config}"
        return None, None

    def eval_dir(self, stage: plans.TrainStage) -> str:
        return f"eval/{stage.config}_{stage.regime}"

    def test_scales(self, stage: plans.TrainStage, multi: bool) -> tuple[int, ...]:
        """Sec. 4.1/4.2 test scales: Q = S or {S-d, S, S+d} for fixed S, d = S/8 (the paper's 32 at
        S=256) rounded half up, a Q below the crop raised to the crop as vgg-eval does (so
        {28, 32} at S = crop = 28); Q = mid or {lo, mid, hi} for jittered S."""
        from evaluation.scales import parse_train_scale

        lo, hi = self.regimes[stage.regime].train_scale
        train = parse_train_scale(f"{lo}-{hi}")
        if train.jittered or not multi:
            return train.default_test_scales(multi_scale=multi)
        step = int(lo / 8 + 0.5)
        return tuple(sorted({max(q, self.profile.crop) for q in (lo - step, lo, lo + step)}))

    # ------------------------------------------------------------------ stages
    def run(self) -> dict:
        r = self.runner
        w = self.work
        r.say(f"VGG demo ({self.plan.name} plan): the paper's pipeline on Fashion-MNIST with the REDUCED "
              f"profile '{self.profile.name}' (not the paper's networks); work dir {r.rel(w)}")
        r.say(f"machine: {os.cpu_count()} CPUs, load average at start "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        self.load_start = os.getloadavg()

        r.stage("import", "import Fashion-MNIST (IDX -> PNG + list files)",
                dict(source=self.source, train=self.plan.train_images, test=self.plan.test_images,
                     val=self._val_images()), [],
                lambda: [w / self.split_list(s) for s in ("train", "test")] + [w / self.val_list()],
                self._import)
        for split in ("train", "test"):
            images = "the train split" if split == "train" else \
                f"the first {self._val_images()} test images (validation in caffe train)"
            r.stage(f"data_{split}", f"LMDBs of {images} at S = "
                    f"{', '.join(map(str, self._lmdb_scales(split)))} + statistics (vgg-data)",
                    dict(scales=self._lmdb_scales(split), crop=self.profile.crop,
                         images=self._val_images() if split == "test" else self.plan.train_images), ["import"],
                    lambda split=split: [w / self.split_dir(split) / "stats.json"]
                    + [w / self.split_dir(split) / f"S{s}_lmdb" for s in self._lmdb_scales(split)],
                    lambda runner, key, split=split: self._data(key, split))
        r.stage("nets", f"generate the {self.profile.name} nets and solvers of {' and '.join(CONFIGS)} (vgg-net)",
                dict(profile=repr(self.profile), batch=self.plan.net_batch, init=INIT, val=self._val_images()),
                ["data_train", "data_test"], self._net_files, self._nets)
        r.stage("timing", f"caffe time of the training nets (batch {self.plan.timing_batch})",
                dict(batch=self.plan.timing_batch, iterations=self.plan.timing_iterations), ["nets"],
                lambda: [w / "timing.json"], self._timing)
        for stage in self.plan.train:
            weights, source_key = self.start_weights(stage)
            if stage.config != "A" and source_key == f"init_{stage.config}":
                a_final = self.plan.final("A")
                r.stage(f"init_{stage.config}", f"initialise {stage.config} from trained A "
                        f"(Sec. 3.1: first four convs and the three FC layers; vgg-init-from-a)",
                        dict(config=stage.config), ["nets", a_final.key],
                        lambda stage=stage: [w / self.init_weights(stage.config)],
                        lambda runner, key, stage=stage: self._init_from_a(key, stage.config))
            regime = self.regimes[stage.regime]
            lo, hi = regime.train_scale
            scale = f"S={lo}" if lo == hi else f"S in [{lo}, {hi}]"
            start = "random init" if weights is None else f"from {Path(weights).name}"
            r.stage(stage.key, f"caffe train {stage.config} at {scale}, {stage.iterations} iterations, "
                    f"lr {regime.base_lr:g}, {start}",
                    dict(stage=stage, plan=self._train_params()), ["nets"] + ([source_key] if source_key else []),
                    lambda stage=stage: [w / self.final_weights(stage)],
                    lambda runner, key, stage=stage: self._train(key, stage))
            self._submit_evaluation(stage)
        r.drain()
        from .report import write_demo_report

        report_start = time.monotonic()
        r.say("\n=== report " + "=" * 68)
        paths = write_demo_report(self, stage_seconds_report=time.monotonic() - report_start)
        for path in paths:
            r.say(f"    wrote {r.rel(path)}")
        total = time.monotonic() - self.started
        r.say(f"\nmake demo: finished in {format_seconds(total)}; report: {r.rel(self.out / 'report.md')}")
        return {"seconds": total, "paths": paths}

    def _lmdb_scales(self, split: str) -> list[int]:
        """Scales the nets read: training S (the top of a jitter range) or the validation Q."""
        regimes = self.regimes.values()
        if split == "train":
            return sorted({self.profile.lmdb_scale_for(r.train_scale[1]) for r in regimes})
        return sorted({self.profile.lmdb_scale_for(r.test_scale) for r in regimes})

    def _val_images(self) -> int:
        return min(self.plan.val_images, self.plan.test_images or 10_000)

    def _train_params(self) -> dict:
        p = self.plan
        return dict(val=p.val_images, test_interval=p.test_interval, snapshot=p.snapshot, display=p.display,
                    iter_size=p.iter_size, images=p.train_images)

    # ------------------------------------------------------------------ import and data
    def _import(self, runner: Runner, key: str) -> dict:
        limits = [n for n in (self.plan.train_images, self.plan.test_images) if n is not None]
        argv = [_python(), "-m", "data_prep.fashion_mnist", "--out", self.images, "--source", self.source]
        if limits:
            argv += ["--limit", str(max(limits))]
        runner.command(key, argv, progress=last_progress_line)
        counts = {}
        for split in ("train", "test"):
            lines = (self.images / f"{split}.txt").read_text().splitlines()
            limit = self.plan.train_images if split == "train" else self.plan.test_images
            if limit is not None:
                lines = lines[:limit]
                write_lines(self.work / self.split_list(split), lines)
            counts[split] = len(lines)
            if split == "test":
                write_lines(self.work / self.val_list(), lines[:self._val_images()])
        return counts

    def _data(self, key: str, split: str) -> dict:
        images = self.split_list(split) if split == "train" else self.val_list()
        argv = [_python(), "-m", "data_prep", "--root", f"fashion-mnist/{split}", "--list", images,
                "--out", self.split_dir(split), "--scales", *map(str, self._lmdb_scales(split)),
                "--crop-size", str(self.profile.crop), "--num-classes", str(self.profile.num_classes)]
        if split == "test":
            argv.append("--no-shuffle")  # in the test set's order, as the report names them
        self.runner.command(key, argv, cwd=self.work, progress=last_progress_line)
        return {}

    # ------------------------------------------------------------------ nets and timing
    def _net_files(self) -> list[Path]:
        files = []
        for name in CONFIGS:
            config = self.config(name)
            for regime in self.regimes.values():
                files += [self.work / self.generate.train_val_path(self.profile, config, regime),
                          self.work / self.generate.solver_path(self.profile, config, regime)]
            files += [self.work / self.generate.deploy_path(self.profile, config, dense) for dense in (False, True)]
        return files

    def _nets(self, runner: Runner, key: str) -> dict:
        argv = [_python(), "-m", "prototxt_gen", *CONFIGS, "--profile", self.profile.name, "--gpus", "0",
                "--batch", str(self.plan.net_batch), "--init", INIT, "--root", ".",
                "--val-images", str(self._val_images())]
        runner.command(key, argv, cwd=self.work)
        return {"command": " ".join(argv[1:])}

    def _timing(self, runner: Runner, key: str) -> dict:
        from prototxt_gen.timing import time_config

        results = {}
        log = runner.log_path(key)
        log.parent.mkdir(parents=True, exist_ok=True)
        runner.say(f"    log: {runner.rel(log)}")
        lines = [f"# caffe time of the {self.profile.name} training nets, batch {self.plan.timing_batch}, "
                 f"{self.plan.timing_iterations} iterations, OPENBLAS_NUM_THREADS="
                 f"{os.environ.get('OPENBLAS_NUM_THREADS', '(default)')}"]
        for name in CONFIGS:
            config = self.config(name)
            train_val = self.work / self.generate.train_val_path(self.profile, config, self.table.regimes(self.profile)[0])
            times = time_config(config, self.profile, train_val, self.plan.timing_batch, self.plan.timing_iterations)
            times.update(batch=self.plan.timing_batch, iterations=self.plan.timing_iterations,
                         parameters=self.table.param_count(config, self.profile),
                         multiply_adds=self.table.multiply_adds(config, self.profile))
            results[name] = times
            lines.append(f"{name}: forward {times['forward_ms']:.1f} ms, backward {times['backward_ms']:.1f} ms "
                         f"per batch of {self.plan.timing_batch}")
            runner.say(f"    {lines[-1]}")
        write_text(log, "\n".join(lines) + "\n")
        write_json(self.work / "timing.json", results)
        return {}

    # ------------------------------------------------------------------ training
    def _derived_solver(self, stage: plans.TrainStage) -> str:
        """The generated solver of the stage's regime with the demo plan's run length."""
        from google.protobuf import text_format
        from prototxt_gen.render import parse

        generated = self.generate.solver_path(self.profile, self.config(stage.config), self.regimes[stage.regime])
        solver = parse((self.work / generated).read_text(), "SolverParameter", generated)
        changes = dict(max_iter=stage.iterations, test_interval=self.plan.test_interval,
                       snapshot=self.plan.snapshot, display=self.plan.display, average_loss=self.plan.display)
        if self.plan.iter_size is not None:
            changes["iter_size"] = self.plan.iter_size
        changed = [f"{k} {getattr(solver, k)} -> {v}" for k, v in changes.items() if getattr(solver, k) != v]
        for k, v in changes.items():
            setattr(solver, k, v)
        path = self.solver(stage)
        header = [f"# {generated}, run length set by the demo's {self.plan.name} plan (demo/plan.py):",
                  f"#   {', '.join(changed) or 'unchanged'}"]
        write_text(self.work / path, "\n".join(header) + "\n" + text_format.MessageToString(solver))
        return path

    def _train(self, key: str, stage: plans.TrainStage) -> dict:
        runner = self.runner
        solver = self._derived_solver(stage)
        prefix = self.snapshot_prefix(stage)
        started = runner.stamp_path(key).with_suffix(".started.json")
        sig = runner.signatures[key]
        previous = _read_json(started)
        states = _snapshots(self.work, prefix, ".solverstate")
        if states and (runner.force or not previous or previous.get("signature") != sig):
            # snapshots of another plan or a forced redo: never resume from them
            for path in _snapshots(self.work, prefix, ".solverstate") + _snapshots(self.work, prefix, ".caffemodel"):
                path.unlink()
            states = []
        write_json(started, {"signature": sig})
        argv = [_caffe(), "train", "-solver", solver]
        weights, _ = self.start_weights(stage)
        resumed = None
        if states:
            resumed = states[-1].relative_to(self.work).as_posix()
            runner.say(f"    resuming the interrupted run from {resumed}")
            argv += ["-snapshot", resumed]
        elif weights:
            argv += ["-weights", weights]
        # The curves and the report read Caffe's INFO lines: a GLOG_minloglevel set by the caller
        # (pycaffe users and test suites quieten Caffe that way) must not hide them.
        runner.command(key, argv, cwd=self.work, env={"GLOG_logtostderr": "1", "GLOG_minloglevel": "0"},
                       append=bool(states),
                       progress=lambda text: training_progress(text, stage.iterations))
        final = self.work / self.final_weights(stage)
        if not final.exists():
            raise StageError(f"caffe train finished without writing {final}")
        from .curves import read_log
        curves = read_log(runner.log_path(key))
        return {"weights": self.final_weights(stage), "solver": solver, "start": weights, "resumed_from": resumed,
                "final_top1": curves.final("accuracy_top1"), "final_top5": curves.final("accuracy_top5"),
                "command": " ".join(argv[1:])}

    def _init_from_a(self, key: str, config: str) -> dict:
        argv = [_python(), "-m", "prototxt_gen.init_from_a", config, "--profile", self.profile.name,
                "--a-weights", self.final_weights(self.plan.final("A")),
                "--net", self.generate.train_val_path(self.profile, self.config(config),
                                                      self.table.regimes(self.profile)[0]),
                "--out", self.init_weights(config)]
        self.runner.command(key, argv, cwd=self.work)
        copied = [line.split()[1] for line in self.runner.log_path(key).read_text().splitlines()
                  if line.startswith("copied")]
        return {"copied": copied, "a_weights": argv[argv.index("--a-weights") + 1]}

    # ------------------------------------------------------------------ evaluation
    def eval_jobs(self, stage: plans.TrainStage) -> list[dict]:
        """The vgg-eval runs of a trained stage, one per (protocol, Q): dense at its multi-scale Q
        set (which holds the single-scale Q) or at the single Q only; multi-crop on the first
        N test images for the final A and D (Sec. 3.2, 4.1-4.3)."""
        jobs = [dict(protocol="dense", scale=q, limit=self.plan.test_images)
                for q in self.test_scales(stage, multi=stage.evaluate == "multi")]
        if stage == self.plan.final(stage.config):
            limit = min(self.plan.multicrop_images, self.plan.test_images or 10_000)
            jobs += [dict(protocol="multicrop", scale=q, limit=limit) for q in self.test_scales(stage, multi=True)]
        # the slowest first, so that the slots finish together
        return sorted(jobs, key=lambda j: -(j["limit"] or 10_000) * j["scale"] ** 2 * (50 if j["protocol"] ==
                                                                                       "multicrop" else 2))

    def _submit_evaluation(self, stage: plans.TrainStage) -> None:
        key = f"eval_{stage.config}_{stage.regime}"
        jobs = self.eval_jobs(stage)
        what = ", ".join(f"{j['protocol']} Q={j['scale']}" + (f" (first {j['limit']})" if j["protocol"] == "multicrop"
                                                             else "") for j in jobs)
        out = self.work / self.eval_dir(stage)

        def commands():
            shutil.rmtree(out, ignore_errors=True)
            return [(self._eval_argv(stage, job), self.work) for job in jobs]

        self.runner.submit(key, f"evaluate {stage.config} ({stage.regime}): {what} (vgg-eval)",
                           dict(jobs=jobs, batch=self.plan.eval_batch), [stage.key],
                           lambda: [out / "done.json"], commands,
                           finish=lambda: write_json(out / "done.json", {"jobs": jobs}) or {"jobs": len(jobs)},
                           progress=last_progress_line, env=EVAL_ENV)

    def _eval_argv(self, stage: plans.TrainStage, job: dict) -> list[str]:
        # one output dir per run: parallel vgg-eval processes never read each other's files
        argv = [_python(), "-m", "evaluation", "run",
                "--model", self.generate.deploy_path(self.profile, self.config(stage.config), dense=True),
                "--weights", self.final_weights(stage), "--root", "fashion-mnist/test",
                "--list", self.split_list("test"), "--out", f"{self.eval_dir(stage)}/{job['protocol']}_Q{job['scale']}",
                "--protocol", job["protocol"], "--scales", str(job["scale"]),
                "--batch-size", str(self.plan.eval_batch), "--mean", f"{self.split_dir('train')}/stats.json",
                "--name", stage.config]
        if job["limit"] is not None:
            argv += ["--limit", str(job["limit"])]
        return argv


# --------------------------------------------------------------------------- helpers


def _read_json(path: Path) -> dict | None:
    import json
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _snapshots(work: Path, prefix: str, suffix: str) -> list[Path]:
    """Caffe's snapshots `<prefix>_iter_<N><suffix>`, by N."""
    found = []
    base = work / prefix
    for path in base.parent.glob(f"{base.name}_iter_*{suffix}"):
        number = path.name[len(base.name) + len("_iter_"):-len(suffix)]
        if number.isdigit():
            found.append((int(number), path))
    return [path for _, path in sorted(found)]


def training_progress(text: str, max_iter: int) -> str | None:
    """'iteration 150/300 [#####.....] loss 0.71 val top-1 0.812' from a Caffe log so far."""
    from .curves import parse_log

    curves = parse_log(text)
    if not curves.loss and not curves.top1:
        return None
    done = max([x for x, _ in curves.loss] + [x for x, _ in curves.top1] + [0])
    width = 20
    filled = int(width * min(done, max_iter) / max(max_iter, 1))
    line = f"iteration {done}/{max_iter} [{'#' * filled}{'.' * (width - filled)}]"
    if curves.loss:
        line += f" loss {curves.loss[-1][1]:.3f}"
    if curves.top1:
        line += f" val top-1 {curves.top1[-1][1]:.3f}"
    return line


def _prepare_work(work: Path, force: bool) -> None:
    """Create the work dir; FORCE empties it, but only a dir the demo made (it has the marker).

    The old contents (70,000 PNGs among them) are moved into `<work>/.old-<pid>` at once and
    deleted by a background `rm`, so FORCE does not wait for the disk.
    """
    if force and work.exists():
        if not (work / WORK_MARKER).exists() and any(work.iterdir()):
            raise StageError(f"FORCE: {work} is not empty and was not made by the demo; not deleting it")
        trash = work / f".old-{os.getpid()}"
        trash.mkdir()
        for entry in work.iterdir():
            if entry != trash and entry.name != WORK_MARKER:
                entry.rename(trash / entry.name)
    work.mkdir(parents=True, exist_ok=True)
    (work / WORK_MARKER).write_text("made by `make demo`; everything here is generated\n")
    old = [str(path) for path in work.glob(".old-*")]
    if old:
        subprocess.Popen(["rm", "-rf", *old], start_new_session=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, preexec_fn=lambda: os.nice(10))


def parser() -> argparse.ArgumentParser:
    from data_prep.fashion_mnist import DEBIAN_DIR

    p = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--plan", choices=sorted(plans.PLANS), default="full",
                   help="full: the reported run; quick: a few iterations on a subset (plumbing check)")
    p.add_argument("--work", type=Path, default=None,
                   help="where every generated file goes (default demo/work, quick: demo/work/quick)")
    p.add_argument("--out", type=Path, default=None,
                   help="where report.md, results.csv and the PNGs go (default demo/, quick: <work>/report)")
    p.add_argument("--source", default=DEBIAN_DIR, help="directory of the Fashion-MNIST IDX files "
                                                       "(default: %(default)s, from `apt-get install dataset-fashion-mnist`)")
    p.add_argument("--force", action="store_true", help="redo every stage (empties the work dir)")
    p.add_argument("--jobs", type=int, default=None,
                   help="evaluation processes at a time (default: the plan's, at most the CPU count)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    plan = plans.PLANS[args.plan]
    work = args.work or (REPO / "demo" / "work" if plan.name == "full" else REPO / "demo" / "work" / plan.name)
    out = args.out or (REPO / "demo" if plan.name == "full" else work / "report")
    jobs = args.jobs if args.jobs is not None else min(plan.jobs, os.cpu_count() or 1)
    if jobs < 1:
        print(f"{PROG}: error: --jobs must be positive", file=sys.stderr)
        return 2
    if not os.path.isdir(args.source):
        print(f"{PROG}: error: Fashion-MNIST not found in {args.source}: `apt-get install dataset-fashion-mnist`, "
              f"or pass --source DIR", file=sys.stderr)
        return 1
    # Caffe's CPU convolutions are small matrix products, one image at a time: a second BLAS
    # thread only adds synchronisation, so each process runs one and the evaluation runs two.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    try:
        _prepare_work(work.resolve(), args.force)
        Demo(plan, work.resolve(), out.resolve(), args.source, args.force, jobs).run()
    except StageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; finished stages are kept and `caffe train` resumes from its last "
              f"snapshot on the next run", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
