"""vgg-chain / `python -m prototxt_gen.chain`: the training chain of Sec. 3.1 as commands.

Simonyan & Zisserman (ICLR 2015), Sec. 3.1: net A is trained from random initialisation; a
deeper net starts from A's first four conv layers and three FC layers (the layers in between
random); S=384 is trained from the S=256 net at lr 1e-3; S in [256, 512] is fine-tuned from the
S=384 net. So the stages of D are

    1. A:S256          caffe train -solver solvers/A.prototxt                  (the prerequisite)
    2. D:init-from-A   vgg-init-from-a D --a-weights models/A/vgg_A_S256_iter_370000.caffemodel
    3. D:S256          caffe train -solver solvers/D.prototxt -weights models/D/vgg_D_init_from_A.caffemodel
    4. D:S384          caffe train -solver solvers/D_S384.prototxt -weights models/D/vgg_D_S256_iter_370000.caffemodel
    5. D:S256-512      caffe train -solver solvers/D_S256-512.prototxt -weights models/D/vgg_D_S384_iter_370000.caffemodel

(with `-gpu 0,1,2,3` for --gpus 4), each reading the output of the stage before it. A net that
is not deeper than A (A, A-LRN, B-5x5), or any net with --init xavier, starts from random init:
its chain is its three regimes. These are the commands of models/<CONFIG>/readme.md, which
readme.py takes from here.

Without --run the stages are printed with what each reads and writes and whether it is done
(its output exists), resumable (an interrupted `caffe train` left a snapshot) or still to do.
--run runs what is left, in order, from the project root (--root): finished stages are skipped,
and so is every stage before the last finished one (its output is no longer needed); an
interrupted `caffe train` resumes from its latest `.solverstate` with `-snapshot` instead of
`-weights`. Every command's output goes to the console and to `<snapshot prefix>.log`.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import generate, net, table
from .cli import _count, _positive_int
from .render import GenerationError, parse

PROG = "vgg-chain"


class ChainError(RuntimeError):
    """A stage cannot start or did not finish; the message is one line."""


# --------------------------------------------------------------------------- the stages

@dataclass(frozen=True)
class Stage:
    name: str  # "A:S256", "D:init-from-A": what --from takes
    summary: str
    argv: tuple[str, ...]  # the command as the readme prints it, run from the project root
    generated: tuple[str, ...]  # files of `make net` it needs
    weights: str | None  # the previous stage's output it starts from (None: random init)
    output: str  # the file whose presence means the stage is done
    config: table.Config
    regime: table.Regime | None = None  # None: the init-from-A stage
    snapshot_prefix: str | None = None
    max_iter: int | None = None

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    @property
    def trains(self) -> bool:
        return self.regime is not None

    @property
    def log(self) -> str:
        return f"{self.snapshot_prefix or self.output.removesuffix('.caffemodel')}.log"


def _train_stage(config: table.Config, profile: table.Profile, regime: table.Regime,
                 options: generate.Options, why: str = "") -> Stage:
    weights = generate.start_weights(config, profile, regime, options)
    lo, hi = regime.train_scale
    scale = f"S={lo}" if lo == hi else f"S in [{lo}, {hi}]"
    start = f"from {weights}" if weights else f"from random init ({options.init})"
    return Stage(
        name=f"{config.name}:{regime.name}",
        summary=f"train {config.name} at {scale}, lr {regime.base_lr:g}, {start}{why}",
        argv=tuple(shlex.split(generate.train_command(config, profile, regime, options))),
        generated=(generate.solver_path(profile, config, regime), generate.train_val_path(profile, config, regime)),
        weights=weights, output=generate.final_weights(profile, config, regime), config=config, regime=regime,
        snapshot_prefix=generate.snapshot_prefix(profile, config, regime), max_iter=profile.recipe.max_iter)


def _init_stage(config: table.Config, profile: table.Profile, a_weights: str) -> Stage:
    flag = () if profile is table.PAPER else ("--profile", profile.name)
    copied = ", ".join(table.layers_from_a(config, profile))
    return Stage(
        name=f"{config.name}:init-from-A",
        summary=f"initialise {config.name} from trained A: {copied} copied, the rest fresh",
        argv=("vgg-init-from-a", config.name, *flag, "--a-weights", a_weights),
        generated=(generate.train_val_path(profile, config, table.regimes(profile)[0]),),
        weights=a_weights, output=generate.init_from_a_path(profile, config), config=config)


def stages(config: table.Config, profile: table.Profile, options: generate.Options) -> list[Stage]:
    """The ordered stages of Sec. 3.1 for a config: A's first regime and the initialisation from
    it when the config starts from A, then the config's regimes, each from the one before."""
    regimes = table.regimes(profile)
    chain: list[Stage] = []
    if generate.start_weights(config, profile, regimes[0], options) == generate.init_from_a_path(profile, config):
        a = table.CONFIGS["A"]
        chain.append(_train_stage(a, profile, regimes[0], options, f": the prerequisite of {config.name}"))
        chain.append(_init_stage(config, profile, chain[-1].output))
    chain += [_train_stage(config, profile, regime, options) for regime in regimes]
    return chain


def generate_commands(chain: list[Stage], profile: table.Profile) -> list[str]:
    """The `make net` commands that write the files the stages read, in the order they need them."""
    configs = list(dict.fromkeys(stage.config.name for stage in chain))
    return [generate.generate_command(table.CONFIGS[name], profile) for name in configs]


def regenerate_hint(config: table.Config, profile: table.Profile, options: generate.Options) -> str:
    """`make net` (or `python -m prototxt_gen`) with the flags of these options."""
    command = generate.generate_command(config, profile)
    flags = [("GPUS", "--gpus", options.gpus if options.gpus != generate.Options.gpus else None),
             ("BATCH", "--batch", options.batch),
             ("INIT", "--init", options.init if options.init != generate.Options.init else None),
             ("LR_POLICY", "--lr-policy", options.lr_policy if options.lr_policy != generate.Options.lr_policy
              else None),
             ("DATA", "--data", options.data_dir if options.data_dir not in (None, profile.data_dir) else None)]
    paper = profile is table.PAPER
    for make_name, flag, value in flags:
        if value is not None:
            command += f" {make_name}={value}" if paper else f" {flag} {value}"
    return command


# --------------------------------------------------------------------------- what is on disk

def snapshots(root: Path, prefix: str, suffix: str) -> dict[int, Path]:
    """Caffe's snapshots `<prefix>_iter_<N><suffix>`, by N."""
    base = root / prefix
    found = {}
    for path in base.parent.glob(f"{base.name}_iter_*{suffix}"):
        number = path.name[len(base.name) + len("_iter_"):-len(suffix)]
        if number.isdigit():
            found[int(number)] = path
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class Status:
    done: bool
    resume_from: str | None = None  # the .solverstate an interrupted run resumes from
    iteration: int | None = None


def status(stage: Stage, root: Path) -> Status:
    if (root / stage.output).is_file():
        return Status(done=True)
    if not stage.trains:
        return Status(done=False)
    models = snapshots(root, stage.snapshot_prefix, ".caffemodel")
    # A state at max_iter would resume to no step and no final snapshot; a state whose
    # .caffemodel is gone cannot be restored (Caffe reloads the weights from it).
    usable = [n for n in snapshots(root, stage.snapshot_prefix, ".solverstate") if n < stage.max_iter and n in models]
    if not usable:
        return Status(done=False)
    return Status(done=False, resume_from=f"{stage.snapshot_prefix}_iter_{usable[-1]}.solverstate",
                  iteration=usable[-1])


@dataclass(frozen=True)
class Step:
    stage: Stage
    status: Status
    action: str  # "skip", "run", "resume" or "redo"
    note: str = ""

    @property
    def label(self) -> str:
        if self.action == "skip":
            return self.note or "done"
        if self.action == "resume":
            return f"resumable from iteration {self.status.iteration}"
        if self.action == "redo":
            return "to redo (--from)"
        return "to do"


def plan(chain: list[Stage], root: Path, start: int | None = None) -> list[Step]:
    """What --run does with each stage. `start` (an index): redo from that stage on, whatever is done."""
    statuses = [status(stage, root) for stage in chain]
    if start is not None:
        return [Step(stage, s, "skip", "not run (before --from)" if not s.done else "") if i < start
                else Step(stage, s, "redo" if s.done or s.resume_from else "run")
                for i, (stage, s) in enumerate(zip(chain, statuses))]
    last_done = max((i for i, s in enumerate(statuses) if s.done), default=-1)
    steps = []
    for i, (stage, s) in enumerate(zip(chain, statuses)):
        if s.done:
            steps.append(Step(stage, s, "skip"))
        elif i < last_done:
            steps.append(Step(stage, s, "skip", f"not needed: the output of stage {last_done + 1} exists"))
        else:
            steps.append(Step(stage, s, "resume" if s.resume_from else "run"))
    return steps


def _data_layers(net_param) -> dict[str, object]:
    from caffe.proto import caffe_pb2

    layers = {}
    for layer in net_param.layer:
        if layer.type == "Data":
            for rule in layer.include:
                layers[caffe_pb2.Phase.Name(rule.phase)] = layer
    return layers


# What the chain relies on in a generated solver: the snapshot names it looks for, the rate of
# the regime, and the batch split of --gpus / --batch.
SOLVER_FIELDS = ("net", "base_lr", "lr_policy", "max_iter", "iter_size", "snapshot_prefix")


def _solver_facts(solver) -> dict:
    return {name: getattr(solver, name) for name in SOLVER_FIELDS}


def _net_facts(net_param) -> dict:
    data = _data_layers(net_param)
    convs = [layer for layer in net_param.layer if layer.type == "Convolution"]
    # not the TEST batch: it divides the validation set, which `make net` counts in the LMDB
    facts = {f"{phase} data source": layer.data_param.source for phase, layer in data.items()}
    if "TRAIN" in data:
        facts["TRAIN data batch_size"] = data["TRAIN"].data_param.batch_size
    facts["weight filler"] = convs[0].convolution_param.weight_filler.type if convs else None
    return facts


def check_generated(stage: Stage, profile: table.Profile, options: generate.Options, root: Path) -> list[str]:
    """One line per problem with the files a stage needs: missing, written with other settings
    than these options, or the LMDBs they read absent."""
    hint = regenerate_hint(stage.config, profile, options)
    missing = [path for path in stage.generated if not (root / path).is_file()]
    if missing:
        return [f"{stage.name}: {missing[0]} not found (run `{hint}`)"]
    if not stage.trains:
        return []
    solver_path, net_path = stage.generated
    try:
        solver = parse((root / solver_path).read_text(), "SolverParameter", solver_path)
        net_param = parse((root / net_path).read_text(), "NetParameter", net_path)
    except (GenerationError, OSError, UnicodeDecodeError) as exc:
        return [f"{stage.name}: {exc} (run `{hint}`)"]
    expected_solver = parse(generate.solver(stage.config, profile, stage.regime, options), "SolverParameter")
    expected_net = parse(generate.train_val(stage.config, profile, stage.regime, options), "NetParameter")
    problems = []
    for path, got, want in ((solver_path, _solver_facts(solver), _solver_facts(expected_solver)),
                            (net_path, _net_facts(net_param), _net_facts(expected_net))):
        differ = [f"{key} {got[key]!r}, expected {want[key]!r}" for key in want if got.get(key) != want[key]]
        if differ:
            problems.append(f"{stage.name}: {path} was generated with other settings ({'; '.join(differ)}): "
                            f"regenerate it with `{hint}` or give {PROG} the flags it was made with")
    for layer in _data_layers(net_param).values():
        source = layer.data_param.source
        if not (root / source).is_dir():
            problems.append(f"{stage.name}: LMDB {source} (read by {net_path}) not found; make it with "
                            f"`make data ... OUT={Path(source).parent.parent}`")
    return problems


def preflight(steps: list[Step], profile: table.Profile, options: generate.Options, root: Path) -> list[str]:
    """Everything that would stop a stage --run starts, before any starts (a missing D file must
    not surface after A has trained for weeks)."""
    problems: list[str] = []
    made: set[str] = set()
    for step in steps:
        if step.action == "skip":
            continue
        stage = step.stage
        problems += check_generated(stage, profile, options, root)
        if step.action != "resume" and stage.weights and stage.weights not in made \
                and not (root / stage.weights).is_file():
            problems.append(f"{stage.name}: its start weights {stage.weights} are missing and no stage "
                            f"before it runs to make them")
        made.add(stage.output)
    return problems


# --------------------------------------------------------------------------- running

def _executable(argv: tuple[str, ...]) -> list[str]:
    """The argv to execute: Caffe's binary from PATH or beside this Python; our own tools with
    this Python, so they run the same code whether or not their console script is installed."""
    from .timing import caffe_binary

    if argv[0] == "caffe":
        return [caffe_binary(), *argv[1:]]
    if argv[0] == "vgg-init-from-a":
        return [sys.executable, "-m", "prototxt_gen.init_from_a", *argv[1:]]
    raise ValueError(f"no executable known for {argv[0]!r}")


def resume_argv(stage: Stage, state: str) -> tuple[str, ...]:
    """`caffe train` refuses -weights with -snapshot: the state restores weights and history."""
    argv = list(stage.argv)
    if "-weights" in argv:
        at = argv.index("-weights")
        del argv[at:at + 2]
    at = argv.index("-solver") + 2
    return tuple(argv[:at] + ["-snapshot", state] + argv[at:])


def set_aside(stage: Stage, root: Path, stamp: str) -> list[Path]:
    """Move a stage's earlier outputs into `superseded-<stamp>/` beside them, so that a redone run,
    if interrupted, never resumes from (or counts as done by) a snapshot of the run before."""
    if stage.trains:
        old = [path for suffix in (".caffemodel", ".solverstate", ".solverstate.h5")
               for path in snapshots(root, stage.snapshot_prefix, suffix).values()]
    else:
        old = [root / stage.output] if (root / stage.output).is_file() else []
    moved = []
    for path in old:
        target = path.parent / f"superseded-{stamp}" / path.name
        target.parent.mkdir(exist_ok=True)
        os.replace(path, target)
        moved.append(target)
    return moved


def execute(step: Step, root: Path, out=None) -> None:
    """Run one stage from `root`, its output to `out` and appended to the stage's log."""
    out = out or sys.stdout
    stage = step.stage
    argv = resume_argv(stage, step.status.resume_from) if step.action == "resume" else stage.argv
    log = root / stage.log
    log.parent.mkdir(parents=True, exist_ok=True)
    command = _executable(argv)
    print(f"    $ {shlex.join(argv)}\n    log: {stage.log}", file=out, flush=True)
    # Caffe's loss and accuracy are INFO lines, which a caller's GLOG_minloglevel would hide from the log
    env = {**os.environ, "GLOG_logtostderr": "1", "GLOG_minloglevel": "0"}
    last = ""
    with open(log, "a") as handle:
        handle.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} in {root}: {shlex.join(command)}\n")
        handle.flush()
        process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, errors="replace", bufsize=1)
        try:
            for line in process.stdout:
                handle.write(line)
                out.write(line)
                last = line.strip() or last
            process.wait()
        except BaseException:
            # Ctrl-C reached Caffe too; wait for it, so that no stage outlives the driver
            process.terminate()
            process.wait()
            raise
    if process.returncode != 0:
        raise ChainError(f"stage {stage.name} failed: {argv[0]} exited with {process.returncode} "
                         f"({last[-160:] or 'no output'}); log: {stage.log}")
    if not (root / stage.output).is_file():
        raise ChainError(f"stage {stage.name}: {argv[0]} finished without writing {stage.output}; log: {stage.log}")


def run(steps: list[Step], root: Path, out=None) -> int:
    """Run the stages that are not skipped, in order; returns how many ran."""
    out = out or sys.stdout
    todo = [(number, step) for number, step in enumerate(steps, 1) if step.action != "skip"]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for number, step in todo:
        print(f"\n=== {number}/{len(steps)} {step.stage.name}: {step.stage.summary}", file=out, flush=True)
        if step.action == "redo":
            for path in set_aside(step.stage, root, stamp):
                print(f"    set aside {os.path.relpath(path, root)}", file=out)
        elif step.action == "resume":
            print(f"    resuming the interrupted run from {step.status.resume_from}", file=out)
        started = time.monotonic()
        execute(step, root, out)
        print(f"    done in {time.monotonic() - started:.0f} s: {step.stage.output}", file=out, flush=True)
    return len(todo)


# --------------------------------------------------------------------------- command line

def describe(steps: list[Step], problems: list[str]) -> list[str]:
    lines = []
    width = max(len(step.stage.name) for step in steps)
    for number, step in enumerate(steps, 1):
        stage = step.stage
        lines.append(f"{number:2}. {stage.name:{width}}  [{step.label}]  {stage.summary}")
        lines.append(f"      $ {stage.command}")
        reads = ([stage.weights] if stage.weights else []) + list(stage.generated)
        lines.append(f"      reads  {', '.join(reads)}")
        lines.append(f"      writes {stage.output}")
        lines += [f"      problem: {p.split(': ', 1)[1]}" for p in problems if p.startswith(f"{stage.name}: ")]
    return lines


def _stage_index(text: str, chain: list[Stage]) -> int:
    if text.isdigit() and 1 <= int(text) <= len(chain):
        return int(text) - 1
    names = [stage.name.lower() for stage in chain]
    if text.lower() in names:
        return names.index(text.lower())
    raise ValueError(f"--from {text!r}: no such stage; give a number 1-{len(chain)} or one of "
                     + ", ".join(stage.name for stage in chain))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1] + "\nconfigs: " + ", ".join(table.valid_names()),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", metavar="CONFIG", type=table.config_argument, help="A, A-LRN, B, C, D, E, B-5x5 or vgg11/13/16/19")
    p.add_argument("--profile", choices=sorted(table.PROFILES), default=table.PAPER.name,
                   help="size profile the files were generated with (default: the paper's)")
    p.add_argument("--gpus", type=_count, default=generate.Options.gpus,
                   help=f"as `make net`: GPUs of `caffe train -gpu` (default {generate.Options.gpus}; 0: CPU)")
    p.add_argument("--batch", type=_positive_int, default=None, help="as `make net`: per-GPU batch")
    p.add_argument("--init", choices=net.INITS, default=generate.Options.init,
                   help="as `make net`; with xavier no net starts from A")
    p.add_argument("--lr-policy", choices=generate.LR_POLICIES, default=generate.Options.lr_policy,
                   help="as `make net`")
    p.add_argument("--data", default=None, help="as `make net`: the dataset dir the nets read")
    p.add_argument("--root", type=Path, default=Path("."),
                   help="project root the stages run from (default: the current directory)")
    p.add_argument("--run", action="store_true",
                   help="run the stages left (default: only print them and their status)")
    p.add_argument("--from", dest="start", metavar="STAGE", default=None,
                   help="redo from STAGE (its number or name, e.g. D:S384) on, even if done: their earlier "
                        "snapshots are moved into superseded-<time>/ first; the stages before it are not run")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    profile = table.PROFILES[args.profile]
    config = args.config
    if not args.root.is_dir():
        p.error(f"--root {args.root}: not a directory")
    options = generate.Options(gpus=args.gpus, batch=args.batch, init=args.init, data_dir=args.data,
                               lr_policy=args.lr_policy)
    try:
        options.validate(profile)
    except (generate.OptionsError, table.BatchSplitError) as exc:
        p.error(str(exc))
    chain = stages(config, profile, options)
    try:
        start = None if args.start is None else _stage_index(args.start, chain)
    except ValueError as exc:
        p.error(str(exc))
    root = args.root
    steps = plan(chain, root, start)
    problems = preflight(steps, profile, options, root)
    print(f"Sec. 3.1 training chain of {config.name} ({profile.name} profile), run from "
          f"{root.resolve()}: {len(chain)} stages")
    print("\n".join(describe(steps, problems)))
    if not args.run:
        todo = sum(step.action != "skip" for step in steps)
        print(f"{todo} stage(s) to run; add --run (make chain ... RUN=1) to run them" if todo
              else "nothing to do: every stage is done")
        return 0
    if problems:
        more = f" (and {len(problems) - 1} more problem(s), listed above)" if len(problems) > 1 else ""
        print(f"{PROG}: error: {problems[0]}{more}", file=sys.stderr)
        return 1
    try:
        ran = run(steps, root)
    except ChainError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; finished stages are kept, and a rerun resumes `caffe train` from "
              "its latest snapshot", file=sys.stderr)
        return 130
    print(f"\n{PROG}: ran {ran} stage(s); every stage of {config.name} is done" if ran
          else f"{PROG}: nothing to do: every stage is done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
