"""The console tools setup.py declares run as a user runs them: from the venv's bin/, in a
directory outside the clone, with nothing on PYTHONPATH. Tests that import the packages from
the repository root cannot see a module the installed packages lack (vgg-data once failed
this way: `tools` was not installed)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOOLS = re.findall(r'"([\w-]+)=[\w.]+:\w+"', (REPO / "setup.py").read_text())  # console_scripts


def test_setup_declares_the_tools():
    assert set(TOOLS) >= {"vgg-net", "vgg-data", "vgg-eval", "vgg-fashion-mnist"}


@pytest.mark.parametrize("name", TOOLS)
def test_installed_tool_answers_help_outside_the_clone(name, tmp_path):
    script = Path(sys.executable).parent / name
    if not script.is_file():
        pytest.skip(f"{script} is not installed (run `make setup`)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(script), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"usage: {name}"), result.stdout[:200]
