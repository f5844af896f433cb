"""vgg-chain (Sec. 3.1): the stage order, its commands (the readme's), status on disk, and a real run."""
import contextlib
import io
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from prototxt_gen import chain, generate, readme, surgery, table
from prototxt_gen.generate import Options
from prototxt_gen.render import parse, write_all

from netgen_helpers import make_dataset

REPO = Path(__file__).resolve().parents[2]
D, A = table.CONFIGS["D"], table.CONFIGS["A"]
PAPER_OPTIONS = Options()


def printed_commands(text: str) -> list[str]:
    return [line.split("$ ", 1)[1] for line in text.splitlines() if line.lstrip().startswith("$ ")]


def readme_block(text: str) -> list[str]:
    """The commands of a model readme's stage block (the fenced block after 'The stages')."""
    block = text.split("The stages, run from the project root", 1)[1].split("```\n", 2)[1]
    return block.strip().splitlines()


# --------------------------------------------------------------------------- order and commands

def test_d_starts_from_a_and_each_stage_reads_the_output_of_the_one_before():
    stages = chain.stages(D, table.PAPER, PAPER_OPTIONS)
    assert [s.name for s in stages] == ["A:S256", "D:init-from-A", "D:S256", "D:S384", "D:S256-512"]
    assert stages[0].argv == ("caffe", "train", "-solver", "solvers/A.prototxt", "-gpu", "0,1,2,3")
    assert stages[0].weights is None and stages[0].output == "models/A/vgg_A_S256_iter_370000.caffemodel"
    assert stages[1].argv == ("vgg-init-from-a", "D", "--a-weights", "models/A/vgg_A_S256_iter_370000.caffemodel")
    assert stages[1].output == "models/D/vgg_D_init_from_A.caffemodel"
    for before, stage in zip(stages, stages[1:]):
        assert stage.weights == before.output
        if stage.trains:
            argv = list(stage.argv)
            assert argv[argv.index("-weights") + 1] == before.output
    assert [s.output for s in stages[2:]] == [f"models/D/vgg_D_{r}_iter_370000.caffemodel"
                                              for r in ("S256", "S384", "S256-512")]


def test_the_committed_solvers_hold_the_rates_and_snapshot_names_the_chain_expects():
    stages = chain.stages(D, table.PAPER, PAPER_OPTIONS)
    rates = {}
    for stage in (s for s in stages if s.trains):
        solver_path = stage.argv[stage.argv.index("-solver") + 1]
        solver = parse((REPO / solver_path).read_text(), "SolverParameter")
        rates[stage.name] = solver.base_lr
        assert f"{solver.snapshot_prefix}_iter_{solver.max_iter}.caffemodel" == stage.output
        # the committed files are what these options generate (no LMDB here, so only those are missing)
        problems = chain.check_generated(stage, table.PAPER, PAPER_OPTIONS, REPO)
        assert [p for p in problems if "LMDB" not in p] == []
    # Sec. 3.1: 1e-2 from scratch and from A; S=384 (and the multi-scale fine-tuning) at 1e-3
    assert rates == pytest.approx({"A:S256": 1e-2, "D:S256": 1e-2, "D:S384": 1e-3, "D:S256-512": 1e-3})


@pytest.mark.parametrize("name,options", [("A", PAPER_OPTIONS), ("A-LRN", PAPER_OPTIONS), ("B-5x5", PAPER_OPTIONS),
                                          ("D", Options(init="xavier"))])
def test_nets_from_random_init_chain_their_own_regimes_only(name, options):
    config = table.resolve(name)
    stages = chain.stages(config, table.PAPER, options)
    assert [s.name for s in stages] == [f"{config.name}:{r}" for r in ("S256", "S384", "S256-512")]
    assert "-weights" not in stages[0].argv and stages[0].weights is None
    assert stages[1].weights == stages[0].output and stages[2].weights == stages[1].output


def test_printed_commands_are_the_readmes(tmp_path, capsys):
    for name in ("D", "A", "E"):
        config = table.CONFIGS[name]
        assert chain.main([name, "--root", str(tmp_path)]) == 0
        printed = printed_commands(capsys.readouterr().out)
        generated = readme_block(readme.model_readme(config, table.PAPER, PAPER_OPTIONS))
        committed = readme_block((REPO / "models" / name / "readme.md").read_text())
        assert generated == committed
        makes = [f"make net CONFIG={c}" for c in (["A", name] if table.initialised_from_a(config) else [name])]
        assert generated[:len(makes)] == makes
        assert [line.split("  # ")[0] for line in generated[len(makes):]] == printed
    # the mini profile's flags, and the GPU count, reach both
    assert chain.main(["D", "--profile", "mini", "--gpus", "0", "--root", str(tmp_path)]) == 0
    printed = printed_commands(capsys.readouterr().out)
    generated = readme_block(readme.model_readme(D, table.MINI, Options(gpus=0)))
    assert [line.split("  # ")[0] for line in generated[2:]] == printed
    last = table.MINI.recipe.max_iter
    assert printed[1] == f"vgg-init-from-a D --profile mini --a-weights models/mini/A/vgg_A_S28_iter_{last}.caffemodel"
    assert not any("-gpu" in line for line in printed)


# --------------------------------------------------------------------------- status on disk

def touch(root: Path, *paths: str) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"")


def test_status_done_resumable_to_do_and_not_needed(tmp_path, capsys):
    stages = chain.stages(D, table.PAPER, PAPER_OPTIONS)
    a_s256, init, d_s256, d_s384, d_multi = stages
    assert [step.action for step in chain.plan(stages, tmp_path)] == ["run"] * 5
    touch(tmp_path, a_s256.output, init.output)
    prefix = d_s256.snapshot_prefix
    # the newest usable state is 10000: 20000 lost its .caffemodel, 370000 would resume to nothing
    touch(tmp_path, f"{prefix}_iter_10000.caffemodel", f"{prefix}_iter_10000.solverstate",
          f"{prefix}_iter_5000.caffemodel", f"{prefix}_iter_5000.solverstate",
          f"{prefix}_iter_20000.solverstate", f"{prefix}_iter_370000.solverstate")
    steps = chain.plan(stages, tmp_path)
    assert [step.action for step in steps] == ["skip", "skip", "resume", "run", "run"]
    assert steps[2].status.resume_from == f"{prefix}_iter_10000.solverstate"
    assert chain.resume_argv(d_s256, steps[2].status.resume_from) == (
        "caffe", "train", "-solver", "solvers/D.prototxt", "-snapshot", f"{prefix}_iter_10000.solverstate",
        "-gpu", "0,1,2,3")
    assert chain.main(["D", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"1\. A:S256 +\[done\]", out) and re.search(r"2\. D:init-from-A +\[done\]", out)
    assert re.search(r"3\. D:S256 +\[resumable from iteration 10000\]", out)
    assert re.search(r"4\. D:S384 +\[to do\]", out) and "3 stage(s) to run" in out

    # A's weights gone but D's initialisation there: A need not be trained again
    (tmp_path / a_s256.output).unlink()
    steps = chain.plan(stages, tmp_path)
    assert steps[0].action == "skip" and steps[0].label == "not needed: the output of stage 2 exists"

    # --from redoes a finished stage and what follows; earlier snapshots go aside, none is lost
    touch(tmp_path, d_s384.output, d_s384.output.replace(".caffemodel", ".solverstate"))
    assert [step.action for step in chain.plan(stages, tmp_path, start=3)] == ["skip"] * 3 + ["redo", "run"]
    moved = chain.set_aside(d_s384, tmp_path, "T")
    assert sorted(p.name for p in moved) == ["vgg_D_S384_iter_370000.caffemodel", "vgg_D_S384_iter_370000.solverstate"]
    assert all(p.parent == tmp_path / "models/D/superseded-T" and p.is_file() for p in moved)
    assert chain.status(d_s384, tmp_path) == chain.Status(done=False)


# --------------------------------------------------------------------------- errors

def test_bad_config_or_flag_is_one_line_and_exit_2(capsys):
    for argv, words in ((["Z"], "unknown config 'Z'"), (["D", "--gpus", "x"], "not an integer"),
                        (["D", "--gpus", "3"], "GPUS=3"), (["D", "--from", "D:S999"], "no such stage"),
                        (["D", "--profile", "huge"], "invalid choice")):
        with pytest.raises(SystemExit) as exit_:
            chain.main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and words in err[-1] and err[-1].startswith("vgg-chain: error:")


def test_run_without_generated_files_says_which_make_net_and_writes_nothing(tmp_path, capsys):
    assert chain.main(["D", "--root", str(tmp_path), "--run"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "solvers/A.prototxt not found (run `make net CONFIG=A`)" in err[0]
    assert not any(tmp_path.iterdir())


def test_files_generated_with_other_flags_are_refused_before_anything_runs(tmp_path, capsys):
    for config in (A, D):
        write_all({tmp_path / p: t for p, t in generate.files_for(config, table.PAPER, PAPER_OPTIONS).items()})
    assert chain.main(["D", "--gpus", "1", "--root", str(tmp_path), "--run"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "models/A/train_val.prototxt was generated with other settings (TRAIN data batch_size 64, expected 256)" \
        in err[0] and "`make net CONFIG=A GPUS=1`" in err[0]


# --------------------------------------------------------------------------- real runs with Caffe

# The mini profile cut to 4 SGD iterations of 8 images with a snapshot at 2: every stage hands its
# snapshot on, and an interrupted one has a state to resume from. Same names and directories as
# `--profile mini`, so the chain's own subprocesses (vgg-init-from-a) see the same paths.
QUICK = replace(table.MINI, recipe=replace(table.MINI.recipe, max_iter=4, batch=8),
                schedule=replace(table.MINI.schedule, snapshot=2, test_interval=4, display=1), val_images=4)
QUICK_OPTIONS = Options(gpus=0)
RUN = ["D", "--profile", "mini", "--gpus", "0"]


@pytest.fixture(scope="module")
def quick_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    make_dataset(root, QUICK, 8)
    for config in (A, D):
        write_all({root / p: t for p, t in generate.files_for(config, QUICK, QUICK_OPTIONS).items()})
    return root


@pytest.fixture
def quick_profile(monkeypatch):
    monkeypatch.setitem(table.PROFILES, "mini", QUICK)


@pytest.fixture(scope="module")
def chained(quick_root):
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(table.PROFILES, "mini", QUICK)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = chain.main(RUN + ["--root", str(quick_root), "--run"])
    return quick_root, code, out.getvalue()


def test_real_run_trains_every_stage_from_the_one_before(chained):
    root, code, out = chained
    assert code == 0, out[-2000:]
    stages = chain.stages(D, QUICK, QUICK_OPTIONS)
    assert [s.name for s in stages] == ["A:S28", "D:init-from-A", "D:S28", "D:S32", "D:S28-32"]
    commands = [s.command for s in stages]
    assert printed_commands(out) == commands + commands  # the listing, then each as it runs
    assert "-weights models/mini/D/vgg_D_init_from_A.caffemodel" in stages[2].command
    for stage in stages:
        assert (root / stage.output).is_file(), stage.name
        assert (root / stage.log).is_file()
    # Caffe really read each stage's start weights
    log = (root / stages[3].log).read_text()
    assert "Finetuning from models/mini/D/vgg_D_S28_iter_4.caffemodel" in log
    # D's initialisation holds A's trained layers, bit for bit
    a_final = surgery.read_caffemodel(root / stages[0].output)
    d_init = surgery.read_caffemodel(root / stages[1].output)
    mapping = table.layers_from_a(D, QUICK)
    assert set(mapping) == {"conv1_1", "conv2_1", "conv3_1", "conv3_2", "fc6", "fc7", "fc8"}
    for target, source in mapping.items():
        for got, want in zip(d_init[target], a_final[source]):
            assert np.array_equal(got, want), target
    # and training moved away from it
    d_final = surgery.read_caffemodel(root / stages[2].output)
    assert not np.array_equal(d_final["conv1_1"][0], d_init["conv1_1"][0])


def test_a_rerun_does_nothing(chained, quick_profile, capsys):
    root, code, _ = chained
    assert code == 0
    before = {p: p.stat().st_mtime_ns for p in root.glob("models/mini/*/*")}
    assert chain.main(RUN + ["--root", str(root), "--run"]) == 0
    out = capsys.readouterr().out
    assert "nothing to do: every stage is done" in out and "$ caffe" in out  # the listing, not a run
    assert not re.search(r"^=== ", out, re.M)
    assert {p: p.stat().st_mtime_ns for p in root.glob("models/mini/*/*")} == before


def test_an_interrupted_stage_resumes_from_its_latest_solverstate(chained, quick_profile, capsys):
    root, code, _ = chained
    assert code == 0
    last = chain.stages(D, QUICK, QUICK_OPTIONS)[-1]
    prefix = root / last.snapshot_prefix
    for suffix in (".caffemodel", ".solverstate"):
        Path(f"{prefix}_iter_4{suffix}").unlink()
    assert Path(f"{prefix}_iter_2.solverstate").is_file()
    assert chain.main(RUN + ["--root", str(root)]) == 0
    assert re.search(r"5\. D:S28-32 +\[resumable from iteration 2\]", capsys.readouterr().out)
    assert chain.main(RUN + ["--root", str(root), "--run"]) == 0
    out = capsys.readouterr().out
    state = f"{last.snapshot_prefix}_iter_2.solverstate"
    assert f"$ caffe train -solver solvers/mini/D_S28-32.prototxt -snapshot {state}\n" in out
    assert f"Resuming from {state}" in (root / last.log).read_text()  # Caffe's own line
    assert out.count("\n=== ") == 1 and "ran 1 stage(s)" in out
    assert (root / last.output).is_file()


def test_from_redoes_a_stage_and_keeps_the_old_snapshots_aside(chained, quick_profile, capsys):
    root, code, _ = chained
    assert code == 0
    last = chain.stages(D, QUICK, QUICK_OPTIONS)[-1]
    old = (root / last.output).read_bytes()
    assert chain.main(RUN + ["--root", str(root), "--run", "--from", "5"]) == 0
    out = capsys.readouterr().out
    assert f"$ {last.command}\n" in out and out.count("\n=== ") == 1
    aside = list((root / "models/mini/D").glob("superseded-*/vgg_D_S28-32_iter_4.caffemodel"))
    assert len(aside) == 1 and aside[0].read_bytes() == old
    assert (root / last.output).is_file()


def test_a_failing_stage_stops_the_chain_with_one_line(tmp_path, quick_profile, capsys):
    make_dataset(tmp_path, QUICK, 2)
    for config in (A, D):
        write_all({tmp_path / p: t for p, t in generate.files_for(config, QUICK, QUICK_OPTIONS).items()})
    a_s28, init, d_s28 = chain.stages(D, QUICK, QUICK_OPTIONS)[:3]
    (tmp_path / a_s28.output).write_bytes(b"not a caffemodel")
    assert chain.main(RUN + ["--root", str(tmp_path), "--run"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vgg-chain: error: stage D:init-from-A failed")
    assert f"log: {init.log}" in err[0]
    assert not (tmp_path / init.output).exists()
    assert not (tmp_path / d_s28.log).exists()  # the next stage never started
