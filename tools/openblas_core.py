"""OpenBLAS's kernels for this CPU, so that Caffe's GEMMs run at the machine's limit (issue 8).

Debian 12's OpenBLAS 0.3.21 (DYNAMIC_ARCH) chooses its kernels once, when the library loads,
from the CPU's model number. On models newer than it, such as Intel family 6 model 207 (Emerald
Rapids, the machine this was found on), it falls back to Prescott's SSE3 kernels: SGEMM at 28
instead of 153 GFLOP/s on one core there, 45 instead of 255-300 on two. It takes the kernels from
OPENBLAS_CORETYPE instead when that is set, so the choice has to be in the environment before the
process loads the library.

`make setup` asks OpenBLAS which kernels it picks here with OPENBLAS_CORETYPE unset (`probe`,
in a child process) and, where it fell back to kernels older than the CPU's AVX2 or AVX-512
(`choose`), records the kernels to use in the venv (`write_record`). Then:
- every Python of the venv sets OPENBLAS_CORETYPE at start-up (`apply`, from a .pth file), so
  pycaffe and the `caffe` processes that the project's scripts start get those kernels;
- `.venv/bin/activate` exports it too, for `caffe` typed in a shell.
A value the user sets is never replaced, and a record applies only on the CPU it was made on.
On a CPU that OpenBLAS knows, the record names no kernels and nothing changes.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

# apply() runs at every start of the venv's Python: re and subprocess are imported where used.

VARIABLE = "OPENBLAS_CORETYPE"
RECORD = "openblas-core.json"
AVX2 = frozenset({"avx2", "fma"})
AVX512 = frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})
# Names openblas_get_corename() gives to kernel sets with AVX2 or better: OpenBLAS's own choice
# among these stands.
AVX2_KERNELS = frozenset({"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids"})
ACTIVATE_BEGIN = "# >>> OpenBLAS kernels for this CPU (tools/openblas_core.py) >>>"
ACTIVATE_END = "# <<< OpenBLAS kernels for this CPU <<<"

PROBE = """
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.openblas_get_corename.restype = ctypes.c_char_p
print(lib.openblas_get_corename().decode())
"""


class ProbeError(RuntimeError):
    pass


def first_processor(cpuinfo: str) -> dict[str, str]:
    """The fields of /proc/cpuinfo's first processor."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    return frozenset(first_processor(cpuinfo).get("flags", "").split())


def cpu_signature(cpuinfo: str) -> str:
    """Vendor, family, model, stepping and flags: what OpenBLAS's choice depends on."""
    fields = first_processor(cpuinfo)
    key = "|".join(fields.get(k, "") for k in ("vendor_id", "cpu family", "model", "stepping"))
    key += "|" + " ".join(sorted(cpu_flags(cpuinfo)))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def choose(detected: str, flags: frozenset[str]) -> str | None:
    """The OPENBLAS_CORETYPE to set where OpenBLAS picked `detected` on a CPU with `flags`; None
    where its choice stands (AVX2 kernels or better, or a CPU without AVX2 and FMA)."""
    if detected in AVX2_KERNELS:
        return None
    if AVX512 <= flags:
        return "SkylakeX"
    if AVX2 <= flags:
        return "Haswell"
    return None


def linked_libraries(binary: str) -> list[tuple[str, str]]:
    """(soname, resolved path) of what `ldd` says `binary` loads, in load order."""
    import re
    import subprocess

    run = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if run.returncode != 0:
        raise ProbeError(f"ldd {binary} failed: {run.stderr.strip() or run.stdout.strip()}")
    found = []
    for line in run.stdout.splitlines():
        match = re.match(r"\s*(\S+)\s+=>\s+(/\S+)", line)
        if match:
            found.append((match.group(1), match.group(2)))
    return found


def linked_openblas(binary: str) -> str | None:
    """The OpenBLAS that `binary` loads (its real path), or None where it links another BLAS."""
    for soname, path in linked_libraries(binary):
        if soname.startswith("libopenblas"):
            return os.path.realpath(path)
    return None


def probe(library: str) -> str:
    """The kernels OpenBLAS at `library` picks on this machine by itself (OPENBLAS_CORETYPE unset)."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    # -S: no site-packages, whose .pth files (this module's included) could set the variable again
    run = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE, library], capture_output=True, text=True,
                         env=env)
    if run.returncode != 0 or not run.stdout.strip():
        raise ProbeError(f"cannot ask {library} for its kernels: "
                         + ((run.stderr.strip().splitlines() or ["no output"])[-1]))
    return run.stdout.strip().splitlines()[-1]


def read_cpuinfo(path: str = "/proc/cpuinfo") -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def make_record(library: str | None, detected: str | None, cpuinfo: str) -> dict:
    """What setup found: no kernels to set where Caffe links no OpenBLAS (library None)."""
    return {"library": library, "detected": detected,
            "coretype": choose(detected, cpu_flags(cpuinfo)) if library and detected else None,
            "cpu": cpu_signature(cpuinfo)}


def write_record(venv: Path, record: dict) -> Path:
    path = venv / RECORD
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def read_record(venv: Path) -> dict | None:
    try:
        record = json.loads((venv / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def coretype_for(record: dict | None, cpuinfo_path: str = "/proc/cpuinfo") -> str | None:
    """The record's kernels, if it has any and was made on this CPU (read only then: apply() runs
    at every start-up, and on CPUs OpenBLAS knows the record names none)."""
    if not record or not isinstance(record.get("coretype"), str):
        return None
    same_cpu = record.get("cpu") == cpu_signature(read_cpuinfo(cpuinfo_path))
    return record["coretype"] if same_cpu else None


def apply(environ=os.environ, venv: str | Path = sys.prefix, cpuinfo_path: str = "/proc/cpuinfo") -> str | None:
    """Set OPENBLAS_CORETYPE from the venv's record unless the user set it; the value set, or None.
    Runs in every start-up of the venv's Python (.pth): it never raises."""
    try:
        if VARIABLE in environ:
            return None
        coretype = coretype_for(read_record(Path(venv)), cpuinfo_path)
        if coretype:
            environ[VARIABLE] = coretype
        return coretype
    except Exception:  # a broken record must not stop Python from starting
        return None


def describe(environ=os.environ, venv: str | Path = sys.prefix) -> str:
    """Where this process's OPENBLAS_CORETYPE comes from, for reports."""
    record = read_record(Path(venv)) or {}
    value = environ.get(VARIABLE)
    if value is None:
        return f"{VARIABLE} unset: OpenBLAS's own choice"
    if value == coretype_for(record):
        return (f"{VARIABLE}={value}, set by the venv: OpenBLAS picks {record.get('detected')} "
                "kernels by itself on this CPU (tools/openblas_core.py)")
    return f"{VARIABLE}={value}, set by the user"


def activate_block(coretype: str | None) -> str:
    """The lines setup adds to bin/activate: export the kernels unless the user chose some."""
    if not coretype:
        return ""
    return (f"{ACTIVATE_BEGIN}\n"
            f'if [ -z "${{{VARIABLE}+x}}" ]; then export {VARIABLE}={coretype}; fi\n'
            f"{ACTIVATE_END}\n")


def with_activate_block(text: str, coretype: str | None) -> str:
    """bin/activate's text with this module's block replaced (or removed where nothing applies)."""
    if ACTIVATE_BEGIN in text and ACTIVATE_END in text:
        head, _, rest = text.partition(ACTIVATE_BEGIN)
        _, _, tail = rest.partition(ACTIVATE_END)
        text = head.rstrip("\n") + "\n" + tail.lstrip("\n")
    return text + activate_block(coretype)


def install(venv: Path, library: str | None, site_packages: Path, cpuinfo: str | None = None) -> dict:
    """Probe `library` (Caffe's OpenBLAS, None where it links another BLAS), record what to set,
    and wire the record into the venv (.pth and bin/activate)."""
    cpuinfo = read_cpuinfo() if cpuinfo is None else cpuinfo
    record = make_record(library, probe(library) if library else None, cpuinfo)
    write_record(venv, record)
    pth = site_packages / "vgg-openblas-core.pth"
    tmp = pth.with_suffix(".tmp")
    # .pth files run in name order; easy-install.pth (the project's path) comes before this one.
    tmp.write_text("import tools.openblas_core as _core; _core.apply()\n")
    os.replace(tmp, pth)
    activate = venv / "bin" / "activate"
    if activate.is_file():
        new = with_activate_block(activate.read_text(), record["coretype"])
        tmp = activate.with_suffix(".tmp")
        tmp.write_text(new)
        os.replace(tmp, activate)
    return record
