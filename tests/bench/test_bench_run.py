"""bench.run's own logic: reading the other areas' benchmarks, efficiency arithmetic, the results
schema of issue 8, and results.md's verdicts. Speed is never asserted."""
import json
import subprocess
import sys

import pytest

from bench import report, run
from prototxt_gen import generate, table

REPO = run.REPO


def net_row(config, caffe_fwd, caffe_bwd, torch_fwd, torch_bwd, torch_infer, batch=8):
    c = table.resolve(config)
    return dict(config=config, batch=batch, iterations=2, caffe_fwd_ms=caffe_fwd, caffe_bwd_ms=caffe_bwd,
                caffe_fwd_bwd_ms=caffe_fwd + caffe_bwd, torch_fwd_ms=torch_fwd, torch_bwd_ms=torch_bwd,
                torch_fwd_bwd_ms=torch_fwd + torch_bwd, torch_infer_ms=torch_infer, torch_threads=2,
                torch_version="2.13.0", multiply_adds=table.multiply_adds(c), train_flops=run.train_flops(c))


def full_results(nets, data_layer_ips=100.0, conv_fraction=0.9):
    rows = [dict(layer=name, forward_ms=1.0, backward_ms=2.0, gflops=90.0 * conv_fraction / 0.9,
                 fraction_of_gemm=conv_fraction) for name in table.resolve("D").conv_names()]
    return dict(
        machine=dict(cpu="Test CPU", cores=2, summary="Test CPU, 2 cores", memory_gib=1.0, os="x", kernel="y",
                     load_average_at_start=[0.1, 0.1, 0.1], load_average_at_end=[0.2, 0.2, 0.2]),
        versions=dict(caffe="BVLC", torch="2.13.0", blas="OpenBLAS"), gemm_gflops=100.0,
        gemm=dict(per_size={"2048": 100.0}, blas="libopenblas", blas_threads=2, repeats=3),
        nets=nets,
        profile=dict(iterations=2, conv=rows, summary=dict(
            config="D", batch=8, conv_forward_ms=13.0, conv_backward_ms=26.0, fc_forward_ms=1.0,
            fc_backward_ms=1.0, other_forward_ms=1.0, other_backward_ms=1.0, conv_forward_gflops=90.0,
            conv_forward_fraction=conv_fraction, conv_gemm_alone_ms=10.0)),
        data_prep=dict(ours_ips=300.0, convert_imageset_ips=100.0, ratio=3.0, setup="x", rows=[
            dict(scales=[256, 384, 512], ours_ips=300.0, convert_imageset_ips=100.0, ratio=3.0)]),
        data_layer_ips_per_core=data_layer_ips,
        data_layer=dict(config="D", regime="S256-512", transform="t", lmdb_images=8, batch=4, batches=2,
                        images_per_s_per_core=data_layer_ips),
        eval=[dict(Q=256, config="D", images=1, dense_ips=0.2, multicrop_ips=0.05, ratio=4.0)])


# --------------------------------------------------------------------------- schema and report

def test_a_complete_run_has_issue_8s_keys():
    results = full_results([net_row("D", 2000, 2600, 1800, 3900, 1500)])
    assert run.schema_errors(results) == []
    del results["eval"]
    del results["nets"][0]["torch_bwd_ms"]
    results["gemm_gflops"] = "fast"
    assert sorted(run.schema_errors(results)) == ["gemm_gflops is str", "missing eval", "nets[0] lacks torch_bwd_ms"]


def test_targets_name_the_configs_behind():
    nets = [net_row("A", 900, 1200, 1000, 2400, 950), net_row("D", 2000, 2600, 1800, 3900, 1500)]
    checks = {target.split(":")[0]: (measured, ok) for target, measured, ok in report.targets(full_results(nets))}
    measured, ok = checks["Forward+backward"]
    assert ok and "D 1.24x" in measured  # 5700 / 4600
    measured, ok = checks["Inference forward"]
    assert not ok and measured.endswith("behind: D") and "A 1.06x" in measured
    # D's training step: 8 images in 4.6 s = 1.74 images/s; 100 images/s per core is 57x
    assert checks["Data layer with jitter >= 4x the images/s of D's training step"][1]


def test_data_layer_and_conv_targets_fail_when_missed():
    nets = [net_row("D", 2000, 2600, 1800, 3900, 1500)]
    checks = {t.split(" ")[0]: ok for t, _, ok in report.targets(full_results(nets, data_layer_ips=6.0,
                                                                              conv_fraction=0.7))}
    assert checks["Data"] is False  # 6 < 4 x 1.74
    assert checks["Conv"] is False


def test_markdown_shows_ms_per_image_and_every_config():
    nets = [net_row("A", 800, 1600, 1000, 2400, 960), net_row("E", 2400, 3200, 2400, 4800, 2000)]
    results = full_results(nets)
    run.add_efficiency(results["nets"], results["gemm_gflops"])
    text = report.markdown(results)
    assert "| A | 7.61 | 100.0 | 200.0 | 300.0 | 125.0 | 300.0 | 425.0 | 120.0 | 1.42 | 1.20 |" in text
    assert "| E | 19.63 |" in text
    assert "Test CPU, 2 cores" in text and "**100.0 GFLOP/s**" in text
    assert "| 256 | 0.200 | 0.050 | 4.0x |" in text


def test_efficiency_is_a_fraction_of_the_gemm_limit():
    config = table.resolve("D")
    flops = 2 * table.multiply_adds(config) * 8
    row = net_row("D", flops / 100e9 * 1e3, 1.0, flops / 50e9 * 1e3, 1.0, 1.0)  # fwd at 100 and 50 GFLOP/s
    run.add_efficiency([row], gemm_limit=200.0)
    assert row["caffe_fwd_gflops"] == pytest.approx(100.0)
    assert row["caffe_fwd_fraction"] == pytest.approx(0.5)
    assert row["torch_fwd_fraction"] == pytest.approx(0.25)


def test_results_are_replaced_whole(tmp_path):
    target = tmp_path / "results.json"
    run.write_atomic(target, "old")
    run.write_atomic(target, json.dumps({"new": 1}))
    assert json.loads(target.read_text()) == {"new": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def alone_result(fractions: dict[str, float], together=1.1) -> dict:
    return dict(config="D", batch=8, rounds=5, calls=3, gemm_size=4096, gemm_gflops=150.0,
                gemm_gflops_rounds=[140.0, 150.0, 149.0, 120.0, 145.0], conv_forward_fraction=together,
                layers=[dict(layer=name, forward_ms=10.0, fraction_of_gemm=f) for name, f in fractions.items()])


def test_the_conv_target_is_decided_on_the_layers_alone_and_shows_both():
    names = table.resolve("D").conv_names()
    results = full_results([], conv_fraction=0.7)
    results["conv_alone"] = alone_result({name: 0.85 for name in names})
    (target,) = [t for t in report.targets(results) if t[0].startswith("Conv")]
    assert target[2] is True
    assert "each layer alone, best of 5 rounds" in target[1] and "13 of 13 layers reach it" in target[1]
    assert "in `caffe time` of the whole net (2 passes, mean): all conv layers together 70%" in target[1]
    assert "0 of 13 layers reach it (below: conv1_1, " in target[1]

    results["conv_alone"] = alone_result({name: 0.85 if name != "conv1_1" else 0.79 for name in names})
    (target,) = [t for t in report.targets(results) if t[0].startswith("Conv")]
    assert target[2] is False and "12 of 13 layers reach it (below: conv1_1)" in target[1]


def test_without_the_alone_step_the_whole_net_decides():
    (target,) = [t for t in report.targets(full_results([], conv_fraction=0.9)) if t[0].startswith("Conv")]
    assert target[2] is True and "alone" not in target[1]


def test_markdown_puts_the_alone_figures_beside_caffe_time():
    results = full_results([], conv_fraction=0.7)
    results["conv_alone"] = alone_result({"conv1_1": 0.812, "conv5_3": 1.25})
    text = report.markdown(results)
    assert "**150.0 GFLOP/s** (per round: 140.0, 150.0, 149.0, 120.0, 145.0)" in text
    conv1_1 = next(line for line in text.splitlines() if line.startswith("| conv1_1 |"))
    assert "| 70% | 10.0 | 81% |" in conv1_1
    conv3_1 = next(line for line in text.splitlines() if line.startswith("| conv3_1 |"))
    assert "| 70% | n/a | n/a |" in conv3_1


# --------------------------------------------------------------------------- the steps, tiny

def test_nets_step_times_caffe_and_pytorch(mini_root):
    rows = run.bench_nets([table.resolve("A-LRN")], batch=2, iterations=1, deep_iterations=1,
                          profile=table.MINI, root=mini_root)
    (row,) = rows
    assert row["config"] == "A-LRN" and row["batch"] == 2
    assert set(run.NET_KEYS) <= set(row)
    assert all(row[k] > 0 for k in ("caffe_fwd_ms", "caffe_bwd_ms", "torch_fwd_ms", "torch_bwd_ms", "torch_infer_ms"))
    assert row["multiply_adds"] == table.multiply_adds(table.resolve("A-LRN"), table.MINI)


def test_data_step_reads_data_preps_benchmark(tmp_path):
    data = run.bench_data_prep(images=4, repeat=1, work=tmp_path)
    assert [r["scales"] for r in data["rows"]] == [[256], [256, 384, 512]]
    assert data["scales"] == [256, 384, 512]
    for r in data["rows"]:
        assert r["ours_ips"] > 0 and r["convert_imageset_ips"] > 0
        assert r["ratio"] == pytest.approx(r["ours_ips"] / r["convert_imageset_ips"], rel=0.05, abs=0.01)


def test_data_layer_step_runs_on_one_core(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench.data_layer", "--images", "8", "--batch", "4",
                          "--batches", "2", "--work", str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["images_per_s_per_core"] > 0 and result["regime"] == "S256-512"
    assert (tmp_path / "data_layer" / "lmdb-8" / "S512_lmdb").is_dir()


def test_eval_step_reads_evaluations_benchmark(mini_root, tmp_path):
    deploy = mini_root / generate.deploy_path(table.MINI, table.resolve("D"))
    rows = run.bench_eval(images=1, work=tmp_path, model=str(deploy), scales=(32, 48))
    assert [r["Q"] for r in rows] == [32, 48]
    for r in rows:
        assert r["dense_ips"] > 0 and r["multicrop_ips"] > 0
        assert r["ratio"] == pytest.approx(r["dense_ips"] / r["multicrop_ips"])


def test_run_writes_both_files_and_says_what_it_skipped(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench.run", "--steps", "gemm", "--gemm-sizes", "64",
                          "--out", str(tmp_path), "--work", str(tmp_path / "work")],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["gemm_gflops"] > 0 and results["machine"]["cores"] >= 1
    assert "missing nets" in run.schema_errors(results)
    assert "partial run" in out.stderr
    assert "## 2. The machine's limit" in (tmp_path / "results.md").read_text()


def test_run_rejects_an_unknown_config():
    out = subprocess.run([sys.executable, "-m", "bench.run", "--configs", "Z"], capture_output=True, text=True,
                         cwd=REPO)
    assert out.returncode == 2 and "unknown config" in out.stderr


def test_a_shared_machine_is_called_out():
    results = full_results([net_row("D", 2000, 2600, 1800, 3900, 1500)])
    assert "machine was shared" not in report.markdown(results)
    cores = results["machine"]["cores"]
    # The run's own threads leave a load of about the core count at the end: not a neighbour.
    results["machine"]["load_average_at_end"] = [cores + 0.8, 1.0, 0.5]
    assert "machine was shared" not in report.markdown(results)
    results["machine"]["load_average_at_end"] = [cores + 2.2, 3.0, 2.0]
    assert (f"**The machine was shared during this run** (1-minute load average up to {cores + 2.2:.1f}"
            in report.markdown(results))
    results["machine"]["load_average_at_end"] = [0.2, 0.2, 0.2]
    results["machine"]["load_average_at_start"] = [1.5, 1.0, 0.5]
    assert "(1-minute load average up to 1.5" in report.markdown(results)
