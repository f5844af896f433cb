#!/usr/bin/env python3
"""`make setup`: system packages, patched Caffe (cached) and the project venv, in one command.

Steps, each skipped when already done, so a second run takes seconds:
1. Debian packages Caffe needs (apt, as root);
2. patched BVLC Caffe from tools/build_caffe.py (a cache hit when nothing changed);
3. `.venv/` on Debian's Python 3.11 (pycaffe and Boost.Python are built against it), with the
   project installed editable (`pip install -e .`, which brings numpy, protobuf, lmdb, ...);
4. Caffe linked into the venv: its tools on `.venv/bin`, `import caffe` through a .pth file;
5. OpenBLAS's kernels for this CPU, where OpenBLAS itself would fall back to old ones
   (tools/openblas_core.py).
Needs only Python's standard library.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_caffe  # noqa: E402
import openblas_core  # noqa: E402

REPO = build_caffe.REPO
# Datasets and tools the project's own stages use (the Fashion-MNIST demo data; see data_prep).
PROJECT_DEPS = ["dataset-fashion-mnist"]


def say(msg: str) -> None:
    print(f"[setup] {msg}", flush=True)


def ensure_venv(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.is_file():
        say(f"creating {venv} on /usr/bin/python3")
        r = subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], capture_output=True, text=True)
        if r.returncode != 0:
            raise build_caffe.StepError("venv", (r.stderr.strip().splitlines() or ["failed"])[-1])
    return py


def install_project(venv: Path, py: Path) -> None:
    """pip install -e . once per content of setup.py (its dependency list) and set of top-level
    packages: the editable install maps each top-level package to its folder when it is made, so
    a package that gains an __init__.py later is not importable until pip runs again."""
    packages = sorted(p.parent.name for p in REPO.glob("*/__init__.py"))
    digest = hashlib.sha256((REPO / "setup.py").read_bytes() + "\n".join(packages).encode()).hexdigest()[:16]
    stamp = venv / f".project-installed-{digest}"
    if stamp.is_file():
        return
    say("installing the project and its Python dependencies into the venv")
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", str(REPO)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        errors = [ln for ln in r.stderr.splitlines() if "ERROR" in ln] or r.stderr.strip().splitlines() or ["failed"]
        raise build_caffe.StepError("pip install", errors[-1])
    for old in venv.glob(".project-installed-*"):
        old.unlink()
    stamp.write_text("")


def link_caffe(venv: Path, py: Path, caffe_dir: Path) -> Path:
    """Expose the cached build in the venv; relinked on every run, so a rebuilt Caffe is picked up."""
    bindir = venv / "bin"
    for tool in build_caffe.TOOLS:
        target = caffe_dir / "bin" / tool
        link = bindir / tool
        if not target.is_file():
            raise build_caffe.StepError("link", f"{target} missing from the Caffe install")
        tmp = bindir / f".{tool}.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, link)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    pth = Path(site) / "caffe-build.pth"
    tmp = pth.with_suffix(".tmp")
    tmp.write_text(f"{caffe_dir / 'python'}\n")
    os.replace(tmp, pth)
    return Path(site)


def set_openblas_kernels(venv: Path, site: Path, caffe_dir: Path) -> None:
    try:
        library = openblas_core.linked_openblas(str(caffe_dir / "lib" / "libcaffe.so"))
        record = openblas_core.install(venv, library, site)
    except (openblas_core.ProbeError, OSError) as exc:
        raise build_caffe.StepError("OpenBLAS kernels", str(exc)) from exc
    if record["coretype"]:
        say(f"OpenBLAS picks {record['detected']} kernels by itself on this CPU: the venv sets "
            f"{openblas_core.VARIABLE}={record['coretype']} (tools/openblas_core.py)")


def check(py: Path) -> None:
    r = subprocess.run([str(py), "-c", "import caffe, caffe.proto.caffe_pb2"], capture_output=True, text=True)
    if r.returncode != 0:
        raise build_caffe.StepError("check", "`import caffe` fails in the venv: "
                                    + (r.stderr.strip().splitlines() or ["?"])[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--venv", default=str(REPO / ".venv"), help="virtualenv path (default: .venv)")
    ap.add_argument("--gpu", action="store_true", help="CUDA build of Caffe")
    args = ap.parse_args(argv)
    venv = Path(args.venv).resolve()
    t0 = time.time()
    try:
        build_caffe.ensure_packages(build_caffe.BUILD_DEPS + PROJECT_DEPS)
        caffe_dir = build_caffe.build(args.gpu)
        py = ensure_venv(venv)
        install_project(venv, py)
        site = link_caffe(venv, py, caffe_dir)
        set_openblas_kernels(venv, site, caffe_dir)
        check(py)
    except build_caffe.StepError as exc:
        print(f"setup: {exc}", file=sys.stderr)
        return 1
    (venv / ".setup-complete").write_text(str(caffe_dir) + "\n")
    say(f"ready in {time.time() - t0:.1f} s: {venv} (Caffe: {caffe_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
