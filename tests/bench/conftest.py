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

