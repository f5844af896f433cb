"""bench.conv_alone: each conv layer alone against the SGEMM of the same rounds. A tiny real run on
the mini profile checks the bookkeeping (which run is the best, what is divided by what); speed is
never asserted."""
import json
import subprocess
import sys

import pytest

from bench import conv_alone, report
from bench.run import REPO
from prototxt_gen import table


@pytest.fixture(scope="module")
def mini_d(mini_root):
    out = subprocess.run([sys.executable, "-m", "bench.conv_alone", "--profile", "mini", "--root", str(mini_root),
                          "--batch", "2", "--rounds", "3", "--calls", "2", "--gemm-size", "96"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_every_conv_layer_of_d_is_timed_in_order(mini_d):
    convs = table.conv_layers(table.resolve("D"), table.MINI)
    assert [row["layer"] for row in mini_d["layers"]] == [c.name for c in convs]
    assert (mini_d["rounds"], mini_d["calls"], mini_d["batch"], mini_d["gemm_size"]) == (3, 2, 2, 96)
    assert len(mini_d["gemm_gflops_rounds"]) == 3
    assert all(len(row["forward_ms_rounds"]) == 3 for row in mini_d["layers"])


def test_layer_and_limit_are_each_the_best_of_their_runs(mini_d):
    limit = mini_d["gemm_gflops"]
    assert limit == max(mini_d["gemm_gflops_rounds"]) > 0
    for row, conv in zip(mini_d["layers"], table.conv_layers(table.resolve("D"), table.MINI)):
        assert row["forward_ms"] == min(row["forward_ms_rounds"]) > 0
        flops = 2 * conv.multiply_adds * mini_d["batch"]
        assert row["gflops"] == pytest.approx(flops / row["forward_ms"] / 1e6)
        assert row["fraction_of_gemm"] == pytest.approx(row["gflops"] / limit)
        # each round's ratio uses that round's own SGEMM
        for ms, gemm, fraction in zip(row["forward_ms_rounds"], mini_d["gemm_gflops_rounds"],
                                      row["fraction_rounds"]):
            assert fraction == pytest.approx(flops / ms / 1e6 / gemm)
    total_ms = sum(row["forward_ms"] for row in mini_d["layers"])
    assert mini_d["conv_forward_ms"] == pytest.approx(total_ms)
    all_flops = 2 * sum(c.multiply_adds for c in table.conv_layers(table.resolve("D"), table.MINI)) * 2
    assert mini_d["conv_forward_fraction"] == pytest.approx(all_flops / total_ms / 1e6 / limit)


@pytest.mark.parametrize("argv, message", [(["--rounds", "0"], "must be positive"),
                                           (["--config", "Z"], "unknown config 'Z'")])
def test_bad_arguments_are_one_line_errors(argv, message):
    out = subprocess.run([sys.executable, "-m", "bench.conv_alone", *argv], capture_output=True, text=True,
                         cwd=REPO)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [out.stderr.strip()] and message in out.stderr


def test_the_function_refuses_a_zero_count():
    with pytest.raises(ValueError):
        conv_alone.conv_alone(table.resolve("D"), calls=0)


def alone_result(fractions: dict[str, float], together=1.1) -> dict:
    return dict(config="D", batch=8, rounds=5, calls=3, gemm_size=4096, gemm_gflops=150.0,
                gemm_gflops_rounds=[140.0, 150.0, 149.0, 120.0, 145.0], conv_forward_fraction=together,
                layers=[dict(layer=name, forward_ms=10.0, fraction_of_gemm=f) for name, f in fractions.items()])


def test_the_conv_target_is_decided_on_the_layers_alone_and_shows_both(conv_results):
    names = table.resolve("D").conv_names()
    results = conv_results(in_net=0.7)
    results["conv_alone"] = alone_result({name: 0.85 for name in names})
    (target,) = [t for t in report.targets(results) if t[0].startswith("Conv")]
    assert target[2] is True
    assert "each layer alone, best of 5 rounds" in target[1] and "13 of 13 layers reach it" in target[1]
    assert "in `caffe time` of the whole net (2 passes, mean): all conv layers together 70%" in target[1]
    assert "0 of 13 layers reach it (below: conv1_1, " in target[1]

    results["conv_alone"] = alone_result({name: 0.85 if name != "conv1_1" else 0.79 for name in names})
    (target,) = [t for t in report.targets(results) if t[0].startswith("Conv")]
    assert target[2] is False and "12 of 13 layers reach it (below: conv1_1)" in target[1]


def test_without_the_alone_step_the_whole_net_decides(conv_results):
    (target,) = [t for t in report.targets(conv_results(in_net=0.9)) if t[0].startswith("Conv")]
    assert target[2] is True and "alone" not in target[1]


def test_markdown_puts_the_alone_figures_beside_caffe_time(conv_results):
    results = conv_results(in_net=0.7)
    results["conv_alone"] = alone_result({"conv1_1": 0.812, "conv5_3": 1.25})
    text = report.markdown(results)
    assert "**150.0 GFLOP/s** (per round: 140.0, 150.0, 149.0, 120.0, 145.0)" in text
    conv1_1 = next(line for line in text.splitlines() if line.startswith("| conv1_1 |"))
    assert "| 70% | 10.0 | 81% |" in conv1_1
    conv3_1 = next(line for line in text.splitlines() if line.startswith("| conv3_1 |"))
    assert "| 70% | n/a | n/a |" in conv3_1
