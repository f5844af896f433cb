"""bench.conv_alone: each conv layer alone against the SGEMM of the same rounds. A tiny real run on
the mini profile checks the bookkeeping (which run is the best, what is divided by what); speed is
never asserted."""
import json
import subprocess
import sys

import pytest

from bench import conv_alone
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
