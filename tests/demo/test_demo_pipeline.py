"""`make demo` shortened (plan QUICK: a few iterations on 600 train / 200 test images) through
every stage with the real caffe binary and pycaffe, checking what each stage hands to the next."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from demo import plan as plans
from demo import run_demo
from data_prep.fashion_mnist import DEBIAN_DIR
from prototxt_gen import surgery, table

pytestmark = pytest.mark.skipif(not Path(DEBIAN_DIR).is_dir(), reason="apt-get install dataset-fashion-mnist")

QUICK = plans.QUICK
D_FINAL = QUICK.final("D")
STAGE_KEYS = (["import", "data_train", "data_test", "nets", "timing", "init_D"]
              + [key for s in QUICK.train for key in (s.key, f"eval_{s.config}_{s.regime}")])


def run(work: Path, out: Path, *extra: str) -> int:
    return run_demo.main(["--plan", "quick", "--work", str(work), "--out", str(out), *extra])


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    work, out = root / "work", root / "report"
    assert run(work, out) == 0
    return work, out


def stamp(work: Path, key: str) -> dict:
    return json.loads((work / "stamps" / f"{key}.json").read_text())


def demo_paths(work: Path, out: Path) -> run_demo.Demo:
    return run_demo.Demo(QUICK, work, out, DEBIAN_DIR, force=False, jobs=1)


def test_every_stage_finished_and_logged(demo_run):
    work, _ = demo_run
    for key in STAGE_KEYS:
        assert (work / "stamps" / f"{key}.json").is_file(), key
    for stage in QUICK.train:
        log = (work / "logs" / f"{stage.key}.log").read_text()
        assert f"Optimization Done." in log  # Caffe's own log, in the file
        assert (work / demo_paths(*demo_run).final_weights(stage)).is_file()


def test_d_starts_from_a_copy_of_trained_a(demo_run):
    work, out = demo_run
    demo = demo_paths(work, out)
    trained_a = surgery.read_caffemodel(work / demo.final_weights(QUICK.final("A")))
    init_d = surgery.read_caffemodel(work / demo.init_weights("D"))
    mapping = table.layers_from_a(table.resolve("D"), table.MINI)
    assert set(mapping) == {"conv1_1", "conv2_1", "conv3_1", "conv3_2", "fc6", "fc7", "fc8"}
    for dst, src in mapping.items():
        assert len(init_d[dst]) == len(trained_a[src]) == 2
        for got, want in zip(init_d[dst], trained_a[src]):
            assert got.tobytes() == want.tobytes(), dst  # bit-identical
    # the layers in between are D's own random ones, not A's
    assert "conv1_2" in init_d and "conv1_2" not in trained_a
    # and D's first `caffe train` started from exactly that file
    first_d = QUICK.chain("D")[0]
    log = (work / "logs" / f"{first_d.key}.log").read_text()
    assert f"-weights {demo.init_weights('D')}" in log.splitlines()[1]


def test_each_fine_tuning_stage_starts_from_the_previous_stage(demo_run):
    work, out = demo_run
    demo = demo_paths(work, out)
    chain = QUICK.chain("D")
    for previous, stage in zip(chain, chain[1:]):
        command = (work / "logs" / f"{stage.key}.log").read_text().splitlines()[1]
        assert f"-weights {demo.final_weights(previous)}" in command
        regime = {r.name: r for r in table.regimes(table.MINI)}[stage.regime]
        solver = (work / demo.solver(stage)).read_text()
        assert f"base_lr: {regime.base_lr:g}" in solver
        assert f"max_iter: {stage.iterations}" in solver


def test_every_validation_pass_reads_the_same_first_test_images(demo_run):
    """A Data layer reads on from where the last test pass stopped, so each pass would see other
    images if the LMDB held more than one pass reads: the validation LMDBs hold exactly the first
    val_images test images, and each stage's test_iter x TEST batch reads each of them once."""
    import lmdb
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    work, out = demo_run
    demo = demo_paths(work, out)
    test_list = (work / demo.split_list("test")).read_text().splitlines()
    assert QUICK.val_images < len(test_list)  # else any LMDB of the test split would pass
    first = [line.split()[0] for line in test_list[:QUICK.val_images]]
    sources = set()
    for stage in QUICK.train:
        solver = text_format.Parse((work / demo.solver(stage)).read_text(), caffe_pb2.SolverParameter())
        net = text_format.Parse((work / solver.net).read_text(), caffe_pb2.NetParameter())
        (data,) = [layer for layer in net.layer
                   if layer.type == "Data" and any(rule.phase == caffe_pb2.TEST for rule in layer.include)]
        assert solver.test_iter[0] * data.data_param.batch_size == QUICK.val_images, stage.key
        sources.add(data.data_param.source)
    for source in sources:
        env = lmdb.open(str(work / source), readonly=True, lock=False)
        try:
            with env.begin() as txn:
                paths = [key.decode().split("_", 1)[1] for key, _ in txn.cursor()]
        finally:
            env.close()
        assert paths == first, source  # keys are %08d_<path>, in the test list's order


def test_evaluation_scores_with_the_fine_tuned_snapshot(demo_run):
    """The npz of D's evaluation names the final jittered snapshot, and its posteriors are what
    pycaffe computes from that snapshot (two images re-scored here)."""
    work, out = demo_run
    demo = demo_paths(work, out)
    from evaluation import posteriors as post
    from evaluation.images import read_image_list
    from evaluation.nets import load_nets, resolve_model
    from evaluation.protocols import evaluate_dense
    from data_prep.stats import load_stats

    runs = [post.load(p) for p in sorted((work / demo.eval_dir(D_FINAL)).glob("dense_Q*/posteriors/*.npz"))]
    lo, hi = table.MINI.jitter
    assert {r.scales[0] for r in runs} == set(demo.test_scales(D_FINAL, multi=True)) == {lo, (lo + hi) // 2, hi}
    assert all(r.weights == demo.final_weights(D_FINAL) and r.train_scale == f"[{lo};{hi}]" for r in runs)
    spec = resolve_model(str(work / demo.generate.deploy_path(table.MINI, table.resolve("D"), dense=True)))
    nets = load_nets(spec, str(work / demo.final_weights(D_FINAL)), need_dense=True, need_crop=False)
    listing = read_image_list(work / demo.split_list("test"), limit=2)
    mean = load_stats(work / demo.split_dir("train") / "stats.json").mean_bgr
    run = runs[0]
    scored = evaluate_dense(nets.dense, listing, work / "fashion-mnist" / "test", run.scales[0], mean,
                            batch_size=QUICK.eval_batch, crop=spec.crop, show_progress=False)
    np.testing.assert_allclose(scored.probs, run.probs[:2], rtol=1e-4, atol=1e-6)


def test_report_tables_are_filled_with_numbers(demo_run):
    _, out = demo_run
    text = (out / "report.md").read_text()
    assert "mini profile on Fashion-MNIST" in text and "QUICK" in text
    # the batch the run took, the paper's beside it, and the profile's batch named as a deviation
    assert f"batch {QUICK.images_per_iteration} ({QUICK.net_batch} x iter_size 1; the paper's 256)" in text
    assert f"- Batch {table.MINI.recipe.batch}, not 256: " in text
    for number in (3, 4, 5, 6):
        section = re.split(r"\n#", text.split(f"### Table {number}:")[1])[0]
        rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
        assert rows, number
        for line in rows:
            assert re.search(r"\| \d+\.\d\d \| \d+\.\d\d \|", line), line
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {int(r["table"]) for r in rows} == {3, 4, 5, 6}
    assert all(0 <= float(r["top1_error_pct"]) <= 100 and r["profile"] == "mini" for r in rows)
    lo, hi = table.MINI.jitter
    assert any(r["model"] == "D" and r["train_S"] == f"[{lo};{hi}]" and r["test_Q"] == f"{{{lo},{(lo + hi) // 2},{hi}}}"
               and r["paper_test_Q"] == "{256,384,512}" for r in rows)
    for stage in QUICK.train:
        image = cv2.imread(str(out / f"curves_{stage.config}_{stage.regime}.png"))
        assert image is not None and image.shape[0] > 100
        assert (image != 255).any(axis=2).sum() > 1000  # something drawn beyond the frame
    timing = json.loads((out.parent / "work" / "timing.json").read_text())
    assert set(timing) == {"A", "D"} and all(t["forward_ms"] > 0 and t["backward_ms"] > 0 for t in timing.values())


def test_the_result_names_every_d_under_the_accuracy_target(demo_run):
    """The target line gives each trained D's dense multi-scale top-1 accuracy, as in Table 4 of
    results.csv, and says met only where one of them reaches 90%."""
    _, out = demo_run
    with open(out / "results.csv") as f:
        rows = [r for r in csv.DictReader(f)
                if r["table"] == "4" and r["model"] == "D" and r["protocol"] == "dense"]
    assert rows
    line = next(l for l in (out / "report.md").read_text().splitlines() if "target >= 90%" in l)
    for r in rows:
        assert f"trained at S={r['train_S']}, Q={r['test_Q']}: **{100 - float(r['top1_error_pct']):.2f}%**" in line
    met = max(100 - float(r["top1_error_pct"]) for r in rows) >= 90
    assert ("target >= 90%: met by D" in line) == met and ("NOT met" in line) == (not met)


def test_the_per_scale_table_shows_each_saved_single_q_run(demo_run):
    """Every dense run at one Q of every trained stage has its row, with the top-1 error of its own
    posteriors; the multi-crop column stands beside the dense one at the same Q."""
    from demo.report import load_runs
    from evaluation import posteriors as post
    from evaluation.metrics import topk_error

    work, out = demo_run
    section = (out / "report.md").read_text().split("### Each test scale on its own")[1].split("\n#")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and "---" not in line and "config" not in line]
    cells = {tuple(row[:3]): row[3:] for row in rows}
    runs = load_runs(work / "eval")
    dense = [r for r in runs if r.protocol == post.DENSE]
    assert {(r.model, r.train_scale, str(r.scales[0])) for r in dense} == set(cells)
    for run in dense:
        row = cells[(run.model, run.train_scale, str(run.scales[0]))]
        assert row[0] == f"{topk_error(run.probs, run.labels, 1):.2f} ({run.num_scored})"
    crops = [r for r in runs if r.protocol == post.MULTICROP]
    assert crops
    for run in crops:
        row = cells[(run.model, run.train_scale, str(run.scales[0]))]
        assert row[2] == f"{topk_error(run.probs, run.labels, 1):.2f} ({run.num_scored})"


def test_each_evaluation_process_runs_one_openmp_thread(tmp_path, monkeypatch):
    """Evaluations take one slot each, beside a training or another evaluation: with Caffe's
    default OpenMP team (a thread per core) they would spin at each other's barriers."""
    demo = demo_paths(tmp_path / "work", tmp_path / "out")
    submitted = {}
    monkeypatch.setattr(demo.runner, "submit", lambda *args, **kwargs: submitted.update(kwargs))
    demo._submit_evaluation(D_FINAL)
    assert submitted["env"]["OMP_NUM_THREADS"] == "1"


def test_a_second_run_reuses_every_stage(demo_run, capsys):
    work, out = demo_run
    before = {p: p.stat().st_mtime_ns for p in (work / "logs").iterdir()}
    capsys.readouterr()
    assert run(work, out) == 0
    printed = capsys.readouterr().out
    assert printed.count("reused:") == len(STAGE_KEYS)
    assert {p: p.stat().st_mtime_ns for p in (work / "logs").iterdir()} == before


def test_an_interrupted_training_resumes_from_its_last_snapshot(demo_run, capsys):
    """As if `caffe train` had been stopped after the snapshot at iteration 2: the stage resumes
    with -snapshot, and the evaluation that reads its weights is redone."""
    work, out = demo_run
    demo = demo_paths(work, out)
    prefix = work / demo.snapshot_prefix(D_FINAL)
    for suffix in (".caffemodel", ".solverstate"):
        Path(f"{prefix}_iter_{D_FINAL.iterations}{suffix}").unlink()
    (work / "stamps" / f"{D_FINAL.key}.json").unlink()
    assert Path(f"{prefix}_iter_2.solverstate").is_file()
    eval_key = f"eval_D_{D_FINAL.regime}"
    eval_made = stamp(work, eval_key)["finished"]
    capsys.readouterr()
    assert run(work, out) == 0
    printed = capsys.readouterr().out
    log = (work / "logs" / f"{D_FINAL.key}.log").read_text()
    assert f"-snapshot {demo.snapshot_prefix(D_FINAL)}_iter_2.solverstate" in log
    assert f"Resuming from {demo.snapshot_prefix(D_FINAL)}_iter_2.solverstate" in log  # Caffe's own line
    assert "resuming the interrupted run" in printed
    assert Path(f"{prefix}_iter_{D_FINAL.iterations}.caffemodel").is_file()
    assert stamp(work, eval_key)["finished"] != eval_made
    assert printed.count("reused:") == len(STAGE_KEYS) - 2


def test_force_refuses_a_directory_the_demo_did_not_make(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("keep me")
    assert run(tmp_path, tmp_path / "report", "--force") == 1
    assert "not made by the demo" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_force_redoes_every_stage(demo_run, capsys):
    work, out = demo_run
    made = {key: stamp(work, key)["finished"] for key in STAGE_KEYS}
    leftover = work / "models" / "stale.txt"
    leftover.write_text("from an earlier run")
    capsys.readouterr()
    assert run(work, out, "--force") == 0
    printed = capsys.readouterr().out
    assert "reused:" not in printed
    assert all(stamp(work, key)["finished"] != made[key] for key in STAGE_KEYS)
    assert not leftover.exists()
