"""`make setup`'s project install (tools/setup_env.py): pip runs again exactly when setup.py or
the set of top-level packages changes, since an editable install maps packages when it is made."""
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
setup_env = importlib.import_module("setup_env")


@pytest.fixture
def project(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "setup.py").write_text("setup(name='x')\n")
    venv = tmp_path / "venv"
    venv.mkdir()
    calls = []

    def fake_run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(setup_env, "REPO", repo)
    monkeypatch.setattr(setup_env.subprocess, "run", fake_run)
    monkeypatch.setattr(setup_env, "say", lambda msg: None)
    return repo, venv, calls


def test_pip_runs_once_per_setup_py_and_package_set(project):
    repo, venv, calls = project
    py = venv / "bin" / "python"
    setup_env.install_project(venv, py)
    setup_env.install_project(venv, py)
    assert len(calls) == 1 and calls[0][-2:] == ["-e", str(repo)]

    (repo / "tools").mkdir()
    (repo / "tools" / "__init__.py").write_text("")  # a folder that becomes a package
    setup_env.install_project(venv, py)
    assert len(calls) == 2

    (repo / "setup.py").write_text("setup(name='x', version='2')\n")
    setup_env.install_project(venv, py)
    setup_env.install_project(venv, py)
    assert len(calls) == 3
    assert len(list(venv.glob(".project-installed-*"))) == 1  # the older stamps are gone
