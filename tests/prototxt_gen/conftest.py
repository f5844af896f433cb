"""Fixtures of the generator tests: a project root holding every config's tiny-profile files."""
from pathlib import Path

import pytest

from prototxt_gen import generate, table
from prototxt_gen.render import write_all

from netgen_helpers import TINY, TINY_OPTIONS, make_dataset


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A project root with tiny LMDBs and every config's tiny-profile files (paths relative to it)."""
    root = tmp_path_factory.mktemp("tiny")
    make_dataset(root, TINY, TINY.val_images)
    for config in table.CONFIGS.values():
        write_all({root / p: t for p, t in generate.files_for(config, TINY, TINY_OPTIONS).items()})
    return root
