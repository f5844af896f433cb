"""Fixtures of the benchmark's own tests: tiny generated nets (never the speed targets)."""
from pathlib import Path

import pytest

from prototxt_gen import generate, table
from prototxt_gen.render import write_all


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory) -> Path:
    """A project root with the mini profile's files of A-LRN, C, D and B-5x5 (every layer kind)."""
    root = tmp_path_factory.mktemp("bench-mini")
    options = generate.Options(gpus=0)
    for name in ("A-LRN", "C", "D", "B-5x5"):
        files = generate.files_for(table.resolve(name), table.MINI, options)
        write_all({root / path: text for path, text in files.items()})
    return root


@pytest.fixture
def conv_results():
    """A results dict as bench.run writes it, with D's `caffe time` profile only: every conv layer at
    `in_net` of the limit."""
    from prototxt_gen import table

    def make(in_net: float) -> dict:
        rows = [dict(layer=name, forward_ms=1.0, backward_ms=2.0, gflops=100.0 * in_net, fraction_of_gemm=in_net)
                for name in table.resolve("D").conv_names()]
        return dict(machine=dict(cpu="Test CPU", cores=2, summary="Test CPU, 2 cores"), gemm_gflops=100.0,
                    profile=dict(iterations=2, conv=rows, summary=dict(
                        config="D", batch=8, conv_forward_ms=13.0, conv_backward_ms=26.0, fc_forward_ms=1.0,
                        fc_backward_ms=1.0, other_forward_ms=1.0, other_backward_ms=1.0,
                        conv_forward_gflops=100.0 * in_net, conv_forward_fraction=in_net, conv_gemm_alone_ms=None)))
    return make
