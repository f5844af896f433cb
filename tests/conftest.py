"""Shared fixtures: where the authors' reference files are, and a scratch dir."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REFERENCE_DIR = REPO.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The authors' released deploy prototxts and PAPER.md; tests that need them skip without."""
    if not (REFERENCE_DIR / "VGG_ILSVRC_16_layers_deploy.prototxt").is_file():
        pytest.skip(f"reference files absent: {REFERENCE_DIR} (read-only data beside the clone)")
    return REFERENCE_DIR
