#!/usr/bin/env python3
"""Build the authors' framework: BVLC Caffe from Debian's source package, with our patches.

Sec. 3.3 of the paper: "Our implementation is derived from the publicly available C++ Caffe
toolbox", with the authors' own changes. We take BVLC Caffe as Debian packages it (source
package `caffe`, the orig tarball is BVLC commit 99bd997 unmodified), verify it against the
signed .dsc's checksums, apply caffe_patches/series in order and build it with cmake.

The result is cached outside the clone, under a key made of the source checksum, the patch
contents and the build flags, so a rerun or a second clone on the same machine reuses it:

    <cache>/downloads/            the .dsc and tarballs as apt fetched them
    <cache>/work-<key>/src        unpacked, patched source (Caffe's tests read it at run time)
    <cache>/work-<key>/build      cmake build tree (incremental: an interrupted build resumes)
    <cache>/caffe-<key>/          the install: bin/, lib/, python/, manifest.json

caffe-<key>/ appears only by an atomic rename after the whole build and install succeeded,
so the cache never holds a half-built install. Needs only Python's standard library.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PATCH_DIR = REPO / "caffe_patches"

SOURCE_PACKAGE = "caffe"
DEBIAN_VERSION = "1.0.0+git20180821.99bd997-8"
DEBIAN_SUITE = "bullseye"
BVLC_COMMIT = "99bd99795dcdf0b1d3086a8d67ab1782a8a08383"
DSC_NAME = f"caffe_{DEBIAN_VERSION}.dsc"
# The .dsc is signed by its Debian uploader and apt checks it against the archive's signed
# Sources index; pinning its hash here also pins the tarball hashes listed inside it.
DSC_SHA256 = "c492f4893fc1ba1fb514b2d9b4763bc78dc93571ea24adc6e604eccbb93cdd64"
ORIG_NAME = "caffe_1.0.0+git20180821.99bd997.orig.tar.gz"
ORIG_SHA256 = "e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c"  # as the .dsc lists it

# Debian 12 packages the build needs (from the source package's Build-Depends, less docs,
# leveldb and the Python packages that pip installs into the venv instead).
BUILD_DEPS = [
    "build-essential", "ccache", "cmake", "patch", "python3-dev", "python3-venv",
    "libboost-dev", "libboost-filesystem-dev", "libboost-system-dev", "libboost-thread-dev",
    "libboost-python-dev", "libgflags-dev", "libgoogle-glog-dev", "libhdf5-dev", "liblmdb-dev",
    "libopenblas-dev", "libopencv-dev", "libprotobuf-dev", "libprotoc-dev", "libsnappy-dev",
    "protobuf-compiler",
]
# pycaffe is compiled against this numpy's headers; numpy 2 headers give an extension that
# runs under numpy 1.x and 2.x alike.
BUILD_NUMPY = "numpy==2.2.6"
# Bump when the build procedure itself changes in a way that changes the result.
RECIPE_VERSION = 1

TOOLS = ("caffe", "convert_imageset", "compute_image_mean", "upgrade_net_proto_text",
         "upgrade_net_proto_binary", "upgrade_solver_proto_text", "extract_features")


class StepError(RuntimeError):
    """A failed step: printed as one line naming the step and what to do."""

    def __init__(self, step: str, message: str):
        super().__init__(f"{step}: {message}")


def say(msg: str) -> None:
    print(f"[caffe] {msg}", flush=True)


def cache_root() -> Path:
    if os.environ.get("VGG_CAFFE_CACHE"):
        return Path(os.environ["VGG_CAFFE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vgg-caffe"


def sha256_file(path: Path) -> str:
    return _cuda_deps().sha256_file(path)  # one implementation, beside the wheel checks that also need it


# ---------------------------------------------------------------- system packages

def missing_packages(packages: list[str]) -> list[str]:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Status}\n", *packages],
                         capture_output=True, text=True).stdout
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return [p for p in packages if p not in installed]


def ensure_packages(packages: list[str], step: str = "system packages") -> None:
    missing = missing_packages(packages)
    if not missing:
        return
    if os.geteuid() != 0:
        raise StepError(step, f"missing {' '.join(missing)}; run as root or `apt-get install {' '.join(missing)}`")
    say(f"installing with apt: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise StepError(step, f"`{' '.join(cmd[:2])}` failed: {last}")


# ---------------------------------------------------------------- source

def debian_archive_uri() -> str:
    """The Debian archive this machine already uses (never a hard-coded mirror)."""
    candidates: list[tuple[str, str]] = []  # (uri, suites)
    sources = Path("/etc/apt/sources.list.d")
    for f in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for stanza in f.read_text().split("\n\n"):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            if "deb" in fields.get("Types", "").split():
                for uri in fields.get("URIs", "").split():
                    candidates.append((uri, fields.get("Suites", "")))
    for f in [Path("/etc/apt/sources.list"), *sorted(sources.glob("*.list"))] if sources.is_dir() else []:
        if f.is_file():
            for line in f.read_text().splitlines():
                m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                if m:
                    candidates.append((m.group(1), m.group(2)))
    for uri, suites in candidates:
        # The main archive, not debian-security or a third-party repository.
        if uri.rstrip("/").endswith("/debian") and "security" not in suites:
            return uri.rstrip("/")
    raise StepError("fetch source", "no Debian archive (URI ending in /debian) in /etc/apt/sources*; "
                    "add your Debian mirror to apt's sources")


def fetch_source(cache: Path) -> Path:
    """Download the .dsc and tarballs with apt's source mechanism; return the download dir."""
    dl = cache / "downloads"
    dsc = dl / DSC_NAME
    if dsc.is_file() and sha256_file(dsc) == DSC_SHA256 and (dl / ORIG_NAME).is_file():
        return dl
    ensure_packages(["dpkg-dev"], "fetch source")
    apt_dir = cache / "apt"
    (apt_dir / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    # A private sources list keeps the machine's own apt configuration untouched.
    sources = apt_dir / "bullseye-src.list"
    sources.write_text(f"deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                       f"{debian_archive_uri()} {DEBIAN_SUITE} main\n")
    opts = ["-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={apt_dir / 'lists'}", "-o", "APT::Sandbox::User=root"]
    dl.mkdir(parents=True, exist_ok=True)
    say(f"fetching source package {SOURCE_PACKAGE}={DEBIAN_VERSION} from Debian {DEBIAN_SUITE}")
    for cmd in (["apt-get", *opts, "update", "-q"],
                ["apt-get", *opts, "source", "--download-only", "-q", f"{SOURCE_PACKAGE}={DEBIAN_VERSION}"]):
        r = subprocess.run(cmd, cwd=dl, capture_output=True, text=True)
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise StepError("fetch source", f"`apt-get {cmd[len(opts) + 1]}` failed ({last}); "
                            "is Debian's archive reachable?")
    return dl


def verify_source(dl: Path) -> str:
    """Check the .dsc against its pinned hash and every file against the .dsc; return orig sha256."""
    dsc = dl / DSC_NAME
    if not dsc.is_file():
        raise StepError("verify source", f"{dsc} missing; delete {dl} and rerun")
    if sha256_file(dsc) != DSC_SHA256:
        raise StepError("verify source", f"{DSC_NAME} checksum mismatch; delete {dl} and rerun")
    text = dsc.read_text()
    block = re.search(r"^Checksums-Sha256:\n((?: .+\n)+)", text, re.M)
    if not block:
        raise StepError("verify source", f"{DSC_NAME} has no Checksums-Sha256 field")
    orig_sha = ""
    for line in block.group(1).splitlines():
        digest, size, name = line.split()
        path = dl / name
        if not path.is_file() or path.stat().st_size != int(size) or sha256_file(path) != digest:
            raise StepError("verify source", f"{name} does not match the .dsc checksum; delete {dl} and rerun")
        if name == ORIG_NAME:
            orig_sha = digest
    if not orig_sha:
        raise StepError("verify source", f"{DSC_NAME} does not list {ORIG_NAME}")
    return orig_sha


def patch_series() -> list[Path]:
    series = PATCH_DIR / "series"
    if not series.is_file():
        raise StepError("patch", f"{series} missing")
    names = [ln.strip() for ln in series.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    paths = [PATCH_DIR / n for n in names]
    for p in paths:
        if not p.is_file():
            raise StepError("patch", f"{p.name} is listed in caffe_patches/series but missing")
    return paths


def apply_patches(src: Path, patches: list[Path]) -> None:
    for p in patches:
        r = subprocess.run(["patch", "-p1", "--batch", "--forward", "--quiet", "-d", str(src), "-i", str(p)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            detail = (r.stdout + r.stderr).strip().splitlines()
            raise StepError("patch", f"{p.name} does not apply to the Debian orig tarball"
                            f" ({detail[0] if detail else 'no output'}); fix the patch")


# ---------------------------------------------------------------- build

def multiarch() -> str:
    return subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout.strip() \
        or "x86_64-linux-gnu"


# GPU build (Sec. 3.3: four GPUs, data parallel; Caffe's `-gpu 0,1,2,3` all-reduces with NCCL).
# Machine code for Volta to Hopper, less what the toolkit's nvcc cannot emit (CUDA 13 starts
# at Turing, sm_75); PTX for the newest, which the driver compiles for later GPUs (Blackwell).
GPU_ARCHS = (70, 75, 80, 86, 89, 90)


def _cuda_deps():
    """tools/cuda_deps.py, also when this file is imported from elsewhere than tools/."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    import cuda_deps
    return cuda_deps


def gpu_archs(supported: list[int]) -> tuple[list[int], int]:
    """(CUDA_ARCH_BIN, CUDA_ARCH_PTX): GPU_ARCHS that nvcc supports, PTX for the newest."""
    archs = [a for a in GPU_ARCHS if a in supported]
    if not archs:
        raise StepError("configure", f"nvcc supports none of sm_{GPU_ARCHS[0]}..sm_{GPU_ARCHS[-1]} "
                        f"(it lists {' '.join(map(str, supported)) or 'nothing'})")
    return archs, archs[-1]


def gpu_cmake_flags(cpu_flags: list[str], deps, cuda_root: Path, archs: list[int], ptx: int) -> list[str]:
    """The CPU build's flags with CUDA, cuDNN and NCCL switched on.

    deps: a cuda_deps.CudaDeps (headers and libraries from NVIDIA's wheels). Its directory name
    holds a hash of the pinned wheel versions, so they are part of the build key.
    """
    return [f for f in cpu_flags if not f.startswith("-DCPU_ONLY=")] + [
        "-DCPU_ONLY=OFF", "-DUSE_CUDNN=ON", "-DUSE_NCCL=ON",
        f"-DCUDA_TOOLKIT_ROOT_DIR={cuda_root}",
        "-DCUDA_ARCH_NAME=Manual", f"-DCUDA_ARCH_BIN={' '.join(map(str, archs))}", f"-DCUDA_ARCH_PTX={ptx}",
        # FindCUDA resets CUDA_cublas_LIBRARY & co. on a first configure, then searches the
        # toolkit and CMAKE_PREFIX_PATH: cuBLAS and cuRAND (and their headers) are found here.
        f"-DCMAKE_PREFIX_PATH={deps.root}",
        f"-DCUDNN_INCLUDE={deps.include}", f"-DCUDNN_LIBRARY={deps.library('cudnn')}",
        f"-DNCCL_INCLUDE_DIR={deps.include}", f"-DNCCL_LIBRARIES={deps.library('nccl')}",
    ]


def cmake_flags(gpu: bool) -> list[str]:
    """Build flags that determine the result (paths to the install and venv are added later)."""
    if gpu:
        cd = _cuda_deps()
        try:
            cd.check_toolkit()
            archs, ptx = gpu_archs(cd.supported_gpu_codes())
            deps = cd.fetch(cache_root())
        except cd.CudaDepsError as exc:
            raise StepError("cuda libraries", str(exc)) from None
        return gpu_cmake_flags(cmake_flags(False), deps, cd.CUDA_ROOT, archs, ptx)
    arch = multiarch()
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    return [
        "-DCMAKE_BUILD_TYPE=Release", "-DCPU_ONLY=ON", "-DBUILD_docs=OFF", "-DBUILD_matlab=OFF",
        "-DUSE_LEVELDB=OFF", "-DUSE_LMDB=ON", "-DUSE_OPENCV=ON", "-DUSE_HDF5=ON",
        "-DBUILD_python=ON", "-DBUILD_python_layer=ON", "-Dpython_version=3",
        "-DBLAS=Open", f"-DOpenBLAS_INCLUDE_DIR=/usr/include/{arch}/openblas-pthread",
        f"-DOpenBLAS_LIB=/usr/lib/{arch}/openblas-pthread/libopenblas.so",
        f"-DPYTHON_INCLUDE_DIR=/usr/include/python{py}",
        f"-DPYTHON_LIBRARY=/usr/lib/{arch}/libpython{py}.so",
    ]


def build_key(gpu: bool) -> tuple[str, dict]:
    patches = patch_series()
    recipe = {
        "debian_version": DEBIAN_VERSION, "orig_sha256": ORIG_SHA256,
        "patches": [[p.name, hashlib.sha256(p.read_bytes()).hexdigest()] for p in patches],
        "flags": cmake_flags(gpu), "numpy": BUILD_NUMPY, "recipe": RECIPE_VERSION,
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    return ("gpu-" if gpu else "cpu-") + key, recipe


def install_dir(gpu: bool = False) -> Path:
    return cache_root() / f"caffe-{build_key(gpu)[0]}"


def build_python(cache: Path) -> Path:
    """A venv in the cache holding the numpy whose headers pycaffe is compiled against."""
    venv = cache / "buildpy"
    py = venv / "bin" / "python"
    tag = venv / ".numpy"
    if py.is_file() and tag.is_file() and tag.read_text() == BUILD_NUMPY:
        return py
    shutil.rmtree(venv, ignore_errors=True)
    for cmd in (["/usr/bin/python3", "-m", "venv", str(venv)],
                [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", BUILD_NUMPY]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise StepError("build python", f"`{' '.join(cmd[:3])}` failed: {last}")
    tag.write_text(BUILD_NUMPY)
    return py


def run_logged(cmd: list[str], log: Path, step: str, cwd: Path | None = None, env=None) -> None:
    """Run cmd with its output in log; print build progress lines; one-line error on failure."""
    last_pct = None
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            f.write(line)
            m = re.match(r"^\[\s*(\d+)%\]", line)
            if m and m.group(1) != last_pct and int(m.group(1)) % 10 == 0:
                last_pct = m.group(1)
                say(f"{step} {last_pct}%")
        rc = proc.wait()
    if rc != 0:
        errors = [ln.strip() for ln in log.read_text().splitlines() if " error" in ln or "Error" in ln]
        hint = errors[0][:200] if errors else f"exit {rc}"
        raise StepError(step, f"{hint} (full log: {log})")


def build(gpu: bool = False, jobs: int | None = None) -> Path:
    """Return the install dir for the current patches and flags, building it if needed."""
    key, recipe = build_key(gpu)
    cache = cache_root()
    final = cache / f"caffe-{key}"
    if (final / "manifest.json").is_file():
        return final
    ensure_packages(BUILD_DEPS)
    cache.mkdir(parents=True, exist_ok=True)
    dl = fetch_source(cache)
    orig_sha = verify_source(dl)
    if orig_sha != ORIG_SHA256:
        raise StepError("verify source", "orig tarball differs from the pinned one")

    work = cache / f"work-{key}"
    src, bld = work / "src", work / "build"
    stamp = src / ".vgg-patched"
    if not stamp.is_file():
        # A source tree from an interrupted unpack or patch cannot be trusted: start over.
        shutil.rmtree(work, ignore_errors=True)
        src.mkdir(parents=True)
        say(f"unpacking {ORIG_NAME} (BVLC {BVLC_COMMIT[:7]})")
        r = subprocess.run(["tar", "xzf", str(dl / ORIG_NAME), "-C", str(src)], capture_output=True, text=True)
        if r.returncode != 0:
            raise StepError("unpack", r.stderr.strip()[:200])
        patches = patch_series()
        say(f"applying {len(patches)} patches from caffe_patches/series")
        apply_patches(src, patches)
        stamp.write_text(json.dumps(recipe["patches"]))
    bld.mkdir(exist_ok=True)
    log = work / "build.log"
    py = build_python(cache)
    jobs = jobs or os.cpu_count() or 2
    t0 = time.time()
    say(f"building {key} with {jobs} jobs (log: {log})")
    # ccache makes a rebuild after a patch change cost only the files it touched; paths are
    # taken relative to the cache root, so objects are shared between work-<key> trees.
    env = dict(os.environ, CCACHE_DIR=str(cache / "ccache"), CCACHE_BASEDIR=str(cache))
    launcher = ["-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"]
    run_logged(["cmake", "-S", str(src), "-B", str(bld), *cmake_flags(gpu), *launcher,
                f"-DPYTHON_EXECUTABLE={py}", f"-DCMAKE_INSTALL_PREFIX={final}"], log, "configure", env=env)
    run_logged(["cmake", "--build", str(bld), "--", f"-j{jobs}", "all", "test.testbin"], log, "build", env=env)
    staging = cache / f"caffe-{key}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    run_logged(["cmake", "--install", str(bld)], log, "install", env=dict(os.environ, DESTDIR=str(staging)))
    staged = staging / final.relative_to("/")
    manifest = {
        "key": key, **recipe, "bvlc_commit": BVLC_COMMIT, "dsc_sha256": DSC_SHA256,
        "work_dir": str(work), "source_dir": str(src), "test_binary": str(bld / "test" / "test.testbin"),
        "build_seconds": round(time.time() - t0, 1), "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (staged / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    os.rename(staged, final)
    shutil.rmtree(staging, ignore_errors=True)
    say(f"built in {manifest['build_seconds']} s: {final}")
    return final


# ---------------------------------------------------------------- tests

def run_gtest(gpu: bool = False, gtest_filter: str | None = None) -> int:
    """BVLC's gtest suite, from the source root (its tests read paths relative to it)."""
    final = install_dir(gpu)
    manifest_path = final / "manifest.json"
    if not manifest_path.is_file():
        raise StepError("caffe-test", f"no build at {final}; run `make caffe` first")
    manifest = json.loads(manifest_path.read_text())
    binary = Path(manifest["test_binary"])
    if not binary.is_file():
        raise StepError("caffe-test", f"{binary} missing (build tree removed?); delete {final} and run `make caffe`")
    flt = gtest_filter or ("*" if gpu else "-*GPU*")
    log = Path(manifest["work_dir"]) / "gtest.log"
    say(f"running Caffe's gtest suite ({flt}); log: {log}")
    t0 = time.time()
    with open(log, "w") as f:
        rc = subprocess.run([str(binary), f"--gtest_filter={flt}"], cwd=manifest["source_dir"],
                            stdout=f, stderr=subprocess.STDOUT).returncode
    text = log.read_text()
    passed = re.search(r"\[  PASSED  \] (\d+) test", text)
    failed = re.findall(r"^\[  FAILED  \] (\S+)", text, re.M)
    failed = sorted(set(t for t in failed if "." in t))
    for name in failed:
        print(f"FAILED {name}")
    n_pass = int(passed.group(1)) if passed else 0
    print(f"caffe gtest: {n_pass} passed, {len(failed)} failed in {time.time() - t0:.0f} s")
    if rc != 0 and not failed:
        print(f"caffe gtest: test binary exited {rc}; see {log}")
    return 0 if rc == 0 else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpu", action="store_true", help="CUDA build (cuDNN, NCCL)")
    ap.add_argument("--jobs", type=int, help="parallel compile jobs (default: all cores)")
    ap.add_argument("--run-tests", action="store_true", help="run Caffe's gtest suite on the cached build")
    ap.add_argument("--gtest-filter", help="gtest filter (default: every CPU test)")
    ap.add_argument("--print-install-dir", action="store_true", help="print the install dir for these flags")
    args = ap.parse_args(argv)
    try:
        if args.print_install_dir:
            print(install_dir(args.gpu))
            return 0
        if args.run_tests:
            return run_gtest(args.gpu, args.gtest_filter)
        print(build(args.gpu, args.jobs))
        return 0
    except StepError as exc:
        print(f"build_caffe: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("build_caffe: interrupted; the next run resumes the build", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
