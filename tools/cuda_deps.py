#!/usr/bin/env python3
"""cuBLAS, cuRAND, cuDNN and NCCL for a GPU build of Caffe, from NVIDIA's wheels on PyPI.

Sec. 3.3 of the paper: the authors trained on 4 GPUs with data parallelism; Caffe does that
with cuDNN for the convolutions and NCCL for the gradient all-reduce. A machine with only the
CUDA compiler (`nvcc`, the runtime and its headers) has neither these libraries nor their
headers, while NVIDIA publishes both in plain wheels. We `pip download` pinned wheels (never
installed into any environment), check each against its pinned sha256, and unpack their
headers and libraries into one directory:

    <cache>/cuda-wheels/                  the wheels as downloaded
    <cache>/cuda-deps-<hash>/include/     cublas*.h, curand*.h, cudnn*.h, nccl.h
    <cache>/cuda-deps-<hash>/lib/         libcublas.so.13, ... and unversioned link names
    <cache>/cuda-deps-<hash>/licenses/    each wheel's licence
    <cache>/cuda-deps-<hash>/manifest.json

<hash> covers the pins, so other versions get another directory; the directory appears by an
atomic rename only when complete. The wheels ship only `libX.so.N` (the runtime soname); the
linker looks for `libX.so`, so that link is made here, inside the deps directory only.
Needs only Python's standard library.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import NamedTuple

# The CUDA toolkit the wheels below are built for: nvcc, cudart and the runtime headers.
CUDA_ROOT = Path(os.environ.get("VGG_CUDA_ROOT", "/usr/local/cuda-13.0"))
CUDA_MAJOR = 13


class Wheel(NamedTuple):
    project: str
    version: str
    filename: str
    sha256: str


# The releases that went out with CUDA 13.0 (cuDNN 9.13 and NCCL 2.27.7 are the first built
# for it), so headers and libraries match the 13.0 nvcc and cudart. x86_64 only.
WHEELS = (
    Wheel("nvidia-cublas", "13.0.2.14", "nvidia_cublas-13.0.2.14-py3-none-manylinux_2_27_x86_64.whl",
          "0cf238ffdbe46c00cb9aa98e7bca745c223a5ca5a53e686ac8b3e5a08fe80d6c"),
    Wheel("nvidia-curand", "10.4.0.35", "nvidia_curand-10.4.0.35-py3-none-manylinux_2_27_x86_64.whl",
          "1aee33a5da6e1db083fe2b90082def8915f30f3248d5896bcec36a579d941bfc"),
    Wheel("nvidia-cudnn-cu13", "9.13.0.50", "nvidia_cudnn_cu13-9.13.0.50-py3-none-manylinux_2_27_x86_64.whl",
          "2150b4850725d30653ec3e365f0732e3e2e3eb8633cf3bd2d3117628dea8b4f9"),
    Wheel("nvidia-nccl-cu13", "2.27.7",
          "nvidia_nccl_cu13-2.27.7-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
          "b28a524abd8389b76a4a3f133c76a7aaa7005e47fcaa9d9603b90103927a3f93"),
)
WHEEL_PLATFORM = "x86_64"
# Bump when the unpacked layout changes.
LAYOUT_VERSION = 1
# Inside the wheels: nvidia/<component>/{include,lib}/...
_WHEEL_TREE = re.compile(r"^nvidia/[^/]+/(include|lib)/(.+)$")
_SONAME = re.compile(r"^(lib[\w+-]+\.so)\.\d+(\.\d+)*$")


class CudaDepsError(RuntimeError):
    """Why the libraries could not be had; one line."""


class CudaDeps(NamedTuple):
    root: Path
    include: Path
    lib: Path

    def library(self, name: str) -> Path:
        """The unversioned link name the linker wants, e.g. library('cudnn')."""
        return self.lib / f"lib{name}.so"


def pins() -> list[str]:
    """The pins as pip requirement strings (what the build key records)."""
    return [f"{w.project}=={w.version}" for w in WHEELS]


def deps_key(wheels=WHEELS) -> str:
    blob = json.dumps({"layout": LAYOUT_VERSION, "wheels": [list(w) for w in wheels]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def deps_dir(cache: Path, wheels=WHEELS) -> Path:
    return cache / f"cuda-deps-{deps_key(wheels)}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_wheel(path: Path, wheel: Wheel) -> None:
    if not path.is_file():
        raise CudaDepsError(f"{wheel.filename} missing from {path.parent}")
    digest = sha256_file(path)
    if digest != wheel.sha256:
        raise CudaDepsError(f"{wheel.filename} has sha256 {digest[:12]}..., pinned {wheel.sha256[:12]}...; "
                            f"delete {path} and rerun")


def download(wheel_dir: Path, wheels=WHEELS, python: str = sys.executable) -> list[Path]:
    """Fetch the wheels that are not already here (pip checks the hashes too); verify all."""
    if platform.machine() != WHEEL_PLATFORM:
        raise CudaDepsError(f"CUDA wheels are pinned for {WHEEL_PLATFORM} only, this machine is {platform.machine()}")
    wheel_dir.mkdir(parents=True, exist_ok=True)
    missing = []
    for w in wheels:
        path = wheel_dir / w.filename
        if path.is_file() and sha256_file(path) != w.sha256:
            path.unlink()  # a truncated or foreign file: fetch it again
        if not path.is_file():
            missing.append(w)
    if missing:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=wheel_dir, delete=False) as req:
            for w in missing:
                req.write(f"{w.project}=={w.version} --hash=sha256:{w.sha256}\n")
        try:
            cmd = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes",
                   "--disable-pip-version-check", "--quiet", "-d", str(wheel_dir), "-r", req.name]
            r = subprocess.run(cmd, capture_output=True, text=True)
        finally:
            os.unlink(req.name)
        if r.returncode != 0:
            asked = " ".join(f"{w.project}=={w.version}" for w in missing)
            if "do not match the hashes" in r.stderr.lower():
                raise CudaDepsError(f"`pip download {asked}`: the index served a file whose sha256 differs from the pin")
            lines = [ln.strip() for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
            raise CudaDepsError(f"`pip download {asked}` failed: {lines[-1] if lines else 'exit %d' % r.returncode}")
    paths = [wheel_dir / w.filename for w in wheels]
    for path, w in zip(paths, wheels):
        verify_wheel(path, w)
    return paths


def unpack(wheel_paths: list[Path], dest: Path) -> None:
    """Headers into dest/include, libraries into dest/lib (plus libX.so links), licences aside."""
    (dest / "include").mkdir(parents=True)
    (dest / "lib").mkdir()
    for wp in wheel_paths:
        with zipfile.ZipFile(wp) as z:
            for info in z.infolist():
                name = info.filename
                m = _WHEEL_TREE.match(name)
                if m and not info.is_dir():
                    target = dest / m.group(1) / m.group(2)
                elif re.search(r"\.dist-info/licenses?/", name, re.I) and not info.is_dir():
                    target = dest / "licenses" / wp.name.split("-")[0] / Path(name).name
                else:
                    continue
                if target.exists():
                    raise CudaDepsError(f"{wp.name}: {name} collides with a file of another wheel")
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                if name.endswith(".so") or ".so." in name:
                    target.chmod(0o755)
    for so in sorted((dest / "lib").iterdir()):
        m = _SONAME.match(so.name)
        if m and not (dest / "lib" / m.group(1)).exists():
            os.symlink(so.name, dest / "lib" / m.group(1))


def check_toolkit(root: Path = CUDA_ROOT) -> str:
    """The nvcc release (e.g. '13.0'); an error when it is missing or not the major pinned for."""
    nvcc = root / "bin" / "nvcc"
    if not nvcc.is_file():
        raise CudaDepsError(f"no nvcc at {nvcc}; install the CUDA {CUDA_MAJOR} toolkit there or set VGG_CUDA_ROOT")
    out = subprocess.run([str(nvcc), "--version"], capture_output=True, text=True).stdout
    m = re.search(r"release (\d+)\.(\d+)", out)
    if not m:
        raise CudaDepsError(f"cannot read the release from `{nvcc} --version`")
    if int(m.group(1)) != CUDA_MAJOR:
        raise CudaDepsError(f"{nvcc} is CUDA {m.group(1)}.{m.group(2)}; the pinned wheels are for CUDA {CUDA_MAJOR}")
    return f"{m.group(1)}.{m.group(2)}"


def supported_gpu_codes(root: Path = CUDA_ROOT) -> list[int]:
    """The sm_XY this nvcc can emit machine code for, as integers XY."""
    r = subprocess.run([str(root / "bin" / "nvcc"), "--list-gpu-code"], capture_output=True, text=True)
    if r.returncode != 0:
        raise CudaDepsError(f"`nvcc --list-gpu-code` failed: {r.stderr.strip()[:200]}")
    return sorted({int(m) for m in re.findall(r"^sm_(\d+)\s*$", r.stdout, re.M)})


def fetch(cache: Path, wheels=WHEELS, python: str = sys.executable) -> CudaDeps:
    """The unpacked deps for these pins, downloading and unpacking them the first time."""
    final = deps_dir(cache, wheels)
    deps = CudaDeps(final, final / "include", final / "lib")
    if (final / "manifest.json").is_file():
        return deps
    paths = download(cache / "cuda-wheels", wheels, python)
    staging = Path(f"{final}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        unpack(paths, staging)
        manifest = {"wheels": [w._asdict() for w in wheels], "layout": LAYOUT_VERSION,
                    "libraries": sorted(p.name for p in (staging / "lib").iterdir())}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            os.rename(staging, final)
        except OSError:
            if not (final / "manifest.json").is_file():  # not a concurrent run that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return deps


def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, required=True, help="cache root (as tools/build_caffe.py uses)")
    args = ap.parse_args(argv)
    try:
        check_toolkit()
        print(fetch(args.cache).root)
        return 0
    except CudaDepsError as exc:
        print(f"cuda_deps: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
