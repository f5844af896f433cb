"""The GPU build of patched Caffe (Sec. 3.3: multi-GPU training): flags, pinned CUDA wheels.

No network and no compiling here: pip is replaced by a stand-in that records what it was asked
and writes what a test tells it to, and wheels are small zip files made on the spot. A GPU
build already in the cache (`make caffe GPU=1`) is checked for what it links.
"""
import hashlib
import importlib
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"
sys.path.insert(0, str(TOOLS))
build_caffe = importlib.import_module("build_caffe")
cuda_deps = importlib.import_module("cuda_deps")

CUDA12_CODES = [50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 89, 90]  # nvcc 12.x --list-gpu-code
CUDA13_CODES = [75, 80, 86, 87, 88, 89, 90, 100, 103, 110, 120, 121]   # nvcc 13.0


def make_wheel(path: Path, files: dict) -> cuda_deps.Wheel:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    project, version = path.name.split("-")[:2]
    return cuda_deps.Wheel(project.replace("_", "-"), version, path.name,
                           hashlib.sha256(path.read_bytes()).hexdigest())


@pytest.fixture
def fake_pip(tmp_path, monkeypatch):
    """A 'python' whose `-m pip download` writes FAKE_PIP_FILES into -d and logs its call."""
    script = tmp_path / "fake-python"
    log = tmp_path / "pip-calls.jsonl"
    script.write_text(f"#!{sys.executable}\n" + """
import json, os, pathlib, sys
args = sys.argv[1:]
dest = pathlib.Path(args[args.index("-d") + 1])
req = pathlib.Path(args[args.index("-r") + 1]).read_text()
with open(os.environ["FAKE_PIP_LOG"], "a") as f:
    f.write(json.dumps({"argv": args, "requirements": req}) + "\\n")
for name, hexdata in json.loads(os.environ.get("FAKE_PIP_FILES", "{}")).items():
    (dest / name).write_bytes(bytes.fromhex(hexdata))
""")
    script.chmod(0o755)
    monkeypatch.setenv("FAKE_PIP_LOG", str(log))

    def calls():
        return [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []

    def serve(files: dict):
        monkeypatch.setenv("FAKE_PIP_FILES", json.dumps({k: v.hex() for k, v in files.items()}))

    return str(script), calls, serve


# ---------------------------------------------------------------- flags

def test_gpu_archs_volta_to_hopper_where_nvcc_can():
    assert build_caffe.gpu_archs(CUDA12_CODES) == ([70, 75, 80, 86, 89, 90], 90)
    # CUDA 13 dropped Volta; Blackwell (100, 120) runs the sm_90 PTX
    assert build_caffe.gpu_archs(CUDA13_CODES) == ([75, 80, 86, 89, 90], 90)
    with pytest.raises(build_caffe.StepError, match="none of sm_70..sm_90"):
        build_caffe.gpu_archs([35, 50])


def test_cmake_flags_gpu(tmp_path, monkeypatch):
    deps = cuda_deps.CudaDeps(tmp_path / "deps", tmp_path / "deps" / "include", tmp_path / "deps" / "lib")
    monkeypatch.setattr(cuda_deps, "check_toolkit", lambda *a: "12.9")
    monkeypatch.setattr(cuda_deps, "supported_gpu_codes", lambda *a: CUDA12_CODES)
    monkeypatch.setattr(cuda_deps, "fetch", lambda *a, **k: deps)
    gpu = build_caffe.cmake_flags(True)
    cpu = build_caffe.cmake_flags(False)
    assert "-DCPU_ONLY=ON" in cpu and "-DCPU_ONLY=ON" not in gpu
    assert [f for f in cpu if not f.startswith("-DCPU_ONLY=")] == gpu[:len(cpu) - 1]
    for flag in ("-DCPU_ONLY=OFF", "-DUSE_CUDNN=ON", "-DUSE_NCCL=ON", "-DCUDA_ARCH_NAME=Manual",
                 "-DCUDA_ARCH_BIN=70 75 80 86 89 90", "-DCUDA_ARCH_PTX=90",
                 f"-DCUDA_TOOLKIT_ROOT_DIR={cuda_deps.CUDA_ROOT}",
                 f"-DCUDNN_LIBRARY={deps.lib}/libcudnn.so", f"-DNCCL_LIBRARIES={deps.lib}/libnccl.so",
                 f"-DCUDNN_INCLUDE={deps.include}", f"-DNCCL_INCLUDE_DIR={deps.include}",
                 f"-DCMAKE_PREFIX_PATH={deps.root}"):
        assert flag in gpu
    key, recipe = build_caffe.build_key(True)
    assert key.startswith("gpu-") and recipe["flags"] == gpu


def test_cmake_flags_gpu_error_names_the_step(monkeypatch):
    def no_nvcc(*a):
        raise cuda_deps.CudaDepsError("no nvcc at /nowhere/bin/nvcc")
    monkeypatch.setattr(cuda_deps, "check_toolkit", no_nvcc)
    with pytest.raises(build_caffe.StepError, match=r"^cuda libraries: no nvcc"):
        build_caffe.cmake_flags(True)


# ---------------------------------------------------------------- pins

def test_pins_are_cuda13_cublas_curand_cudnn9_nccl2():
    by_project = {w.project: w for w in cuda_deps.WHEELS}
    assert set(by_project) == {"nvidia-cublas", "nvidia-curand", "nvidia-cudnn-cu13", "nvidia-nccl-cu13"}
    assert by_project["nvidia-cublas"].version.split(".")[0] == str(cuda_deps.CUDA_MAJOR)
    assert by_project["nvidia-cudnn-cu13"].version.split(".")[0] == "9"
    assert by_project["nvidia-nccl-cu13"].version.split(".")[0] == "2"
    for w in cuda_deps.WHEELS:
        assert re.fullmatch(r"[0-9a-f]{64}", w.sha256)
        assert w.filename.startswith(f"{w.project.replace('-', '_')}-{w.version}-") and w.filename.endswith(".whl")
    assert cuda_deps.pins() == [f"{w.project}=={w.version}" for w in cuda_deps.WHEELS]


def test_deps_dir_changes_with_any_pin(tmp_path):
    base = cuda_deps.deps_dir(tmp_path)
    assert base.name.startswith("cuda-deps-") and base == cuda_deps.deps_dir(tmp_path, cuda_deps.WHEELS)
    for field in ("version", "sha256"):
        changed = (cuda_deps.WHEELS[0]._replace(**{field: "1" * 64}),) + cuda_deps.WHEELS[1:]
        assert cuda_deps.deps_dir(tmp_path, changed) != base


# ---------------------------------------------------------------- download and unpack

def test_download_pins_hashes_and_rejects_a_wrong_file(tmp_path, fake_pip):
    python, calls, serve = fake_pip
    src = tmp_path / "src"
    src.mkdir()
    wheel = make_wheel(src / "nvidia_fake-1.2-py3-none-manylinux_2_27_x86_64.whl", {"a.txt": "A"})
    good = (src / wheel.filename).read_bytes()
    wheels_dir = tmp_path / "wheels"

    serve({wheel.filename: good[:-1] + b"X"})  # an index serving other bytes than pinned
    with pytest.raises(cuda_deps.CudaDepsError, match="has sha256 .* pinned"):
        cuda_deps.download(wheels_dir, (wheel,), python)
    (call,) = calls()
    assert "--require-hashes" in call["argv"] and "--no-deps" in call["argv"]
    assert call["requirements"].strip() == f"nvidia-fake==1.2 --hash=sha256:{wheel.sha256}"

    serve({wheel.filename: good})
    assert cuda_deps.download(wheels_dir, (wheel,), python) == [wheels_dir / wheel.filename]
    assert len(calls()) == 2  # the corrupt file was fetched again
    # all present and verified: pip is not asked again
    cuda_deps.download(wheels_dir, (wheel,), python)
    assert len(calls()) == 2


def test_fetch_unpacks_headers_libs_and_link_names(tmp_path, fake_pip):
    python, calls, serve = fake_pip
    cache = tmp_path / "cache"
    (cache / "cuda-wheels").mkdir(parents=True)
    w1 = make_wheel(cache / "cuda-wheels" / "nvidia_blas-13.0-py3-none-any.whl", {
        "nvidia/cu13/include/blas.h": "#define BLAS 1\n",
        "nvidia/cu13/lib/libblas.so.13": b"\x7fELF-blas",
        "nvidia_blas-13.0.dist-info/licenses/License.txt": "licence",
        "nvidia_blas-13.0.dist-info/RECORD": "",
    })
    w2 = make_wheel(cache / "cuda-wheels" / "nvidia_dnn-9.1-py3-none-any.whl", {
        "nvidia/dnn/include/dnn_version.h": "#define DNN_MAJOR 9\n",
        "nvidia/dnn/lib/libdnn.so.9": b"\x7fELF-dnn",
    })
    deps = cuda_deps.fetch(cache, (w1, w2), python)
    assert calls() == []  # both wheels were already there
    assert deps.root == cuda_deps.deps_dir(cache, (w1, w2))
    assert (deps.include / "blas.h").read_text() == "#define BLAS 1\n"
    assert (deps.include / "dnn_version.h").is_file()
    assert deps.library("blas").is_symlink() and deps.library("blas").resolve().name == "libblas.so.13"
    assert deps.library("dnn").read_bytes() == b"\x7fELF-dnn"
    assert (deps.root / "licenses" / "nvidia_blas" / "License.txt").read_text() == "licence"
    manifest = json.loads((deps.root / "manifest.json").read_text())
    assert [w["sha256"] for w in manifest["wheels"]] == [w1.sha256, w2.sha256]
    assert [p.name for p in cache.iterdir() if "staging" in p.name] == []
    # a second call reuses the directory as it is
    (deps.include / "blas.h").write_text("touched")
    assert cuda_deps.fetch(cache, (w1, w2), python) == deps
    assert (deps.include / "blas.h").read_text() == "touched"


def test_fetch_refuses_wheels_that_overwrite_each_other(tmp_path, fake_pip):
    python, _, _ = fake_pip
    cache = tmp_path / "cache"
    (cache / "cuda-wheels").mkdir(parents=True)
    a = make_wheel(cache / "cuda-wheels" / "nvidia_a-1-py3-none-any.whl", {"nvidia/a/include/same.h": "a"})
    b = make_wheel(cache / "cuda-wheels" / "nvidia_b-1-py3-none-any.whl", {"nvidia/b/include/same.h": "b"})
    with pytest.raises(cuda_deps.CudaDepsError, match="collides"):
        cuda_deps.fetch(cache, (a, b), python)
    assert not cuda_deps.deps_dir(cache, (a, b)).exists()
    assert [p.name for p in cache.iterdir() if "staging" in p.name] == []


# ---------------------------------------------------------------- a real GPU build, if any

def cached_gpu_builds() -> list[Path]:
    root = build_caffe.cache_root()
    return sorted(root.glob("caffe-gpu-*/manifest.json"), key=lambda p: p.stat().st_mtime)


@pytest.mark.skipif(not cached_gpu_builds(), reason="no GPU build in the Caffe cache (`make caffe GPU=1`)")
def test_cached_gpu_build_links_cuda_cudnn_nccl():
    install = cached_gpu_builds()[-1].parent
    for binary in (install / "lib" / "libcaffe.so", install / "bin" / "caffe"):
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
        linked = dict(re.findall(r"^\s*(\S+) => (.+?) \(", out, re.M))
        for lib in ("libcudart.so.13", "libcublas.so.13", "libcurand.so.10", "libcudnn.so.9", "libnccl.so.2"):
            assert lib in linked, f"{binary.name} does not link {lib}"
            assert linked[lib] != "not found", f"{binary.name}: {lib} not found at run time"
