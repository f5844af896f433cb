"""Per-layer `caffe time` parsing and the conv-layer efficiency rows."""
import pytest

from bench import caffe_profile
from prototxt_gen import table


@pytest.fixture(scope="module")
def mini_d_times(mini_root):
    return caffe_profile.layer_times(table.resolve("D"), batch=2, iterations=1, profile=table.MINI,
                                     root=mini_root)


def test_every_layer_of_the_training_net_is_timed(mini_d_times):
    config = table.resolve("D")
    names = set(mini_d_times)
    assert set(config.conv_names()) <= names
    assert {"fc6", "fc7", "fc8", "pool5", "drop6", "loss"} <= names
    assert all({"forward_ms", "backward_ms"} <= set(t) for t in mini_d_times.values())
    assert all(t["forward_ms"] >= 0 for t in mini_d_times.values())


def test_conv_rows_and_summary(mini_d_times):
    config = table.resolve("D")
    alone = [dict(layer=name, gemm_ms=0.001, gemm_gflops=1.0) for name in config.conv_names()]
    rows = caffe_profile.conv_rows(config, 2, mini_d_times, gemm_limit=100.0, conv_gemm=alone, profile=table.MINI)
    assert [r["layer"] for r in rows] == config.conv_names()
    for row, conv in zip(rows, table.conv_layers(config, table.MINI)):
        flops = 2 * 2 * conv.in_size ** 2 * conv.kernel ** 2 * conv.in_channels * conv.out_channels
        if row["forward_ms"] > 0:
            assert row["gflops"] == pytest.approx(flops / row["forward_ms"] / 1e6)
            assert row["fraction_of_gemm"] == pytest.approx(row["gflops"] / 100.0)
        assert row["overhead_ms"] == pytest.approx(row["forward_ms"] - 0.001)
    summary = caffe_profile.summary(config, 2, mini_d_times, rows, 100.0, profile=table.MINI)
    total_fwd = sum(t["forward_ms"] for t in mini_d_times.values())
    assert summary["conv_forward_ms"] + summary["fc_forward_ms"] + summary["other_forward_ms"] == \
        pytest.approx(total_fwd)


def test_a_missing_conv_layer_is_an_error(mini_d_times):
    times = {k: v for k, v in mini_d_times.items() if k != "conv3_2"}
    with pytest.raises(KeyError, match="conv3_2"):
        caffe_profile.conv_rows(table.resolve("D"), 2, times, 100.0, profile=table.MINI)


def test_parse_reads_caffes_scientific_notation():
    log = ("I1126 09:00:00.1 1 caffe.cpp:417]    conv1_1\tforward: 1.5e-05 ms.\n"
           "I1126 09:00:00.1 1 caffe.cpp:420]    conv1_1\tbackward: 12.25 ms.\n")
    assert caffe_profile.parse_layer_times(log) == {"conv1_1": {"forward_ms": 1.5e-05, "backward_ms": 12.25}}
