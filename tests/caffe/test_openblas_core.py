"""tools/openblas_core.py: OpenBLAS's kernels for this CPU. Where OpenBLAS 0.3.21 falls back to
old kernels on a CPU it does not know, the venv sets OPENBLAS_CORETYPE; elsewhere nothing changes,
and a user's own value always stands."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools import openblas_core as core

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv"

AVX512_FLAGS = "fpu sse sse2 avx fma avx2 avx512f avx512cd avx512bw avx512dq avx512vl"
AVX2_FLAGS = "fpu sse sse2 avx fma avx2"
OLD_FLAGS = "fpu sse sse2 sse3 avx"


def cpuinfo(model: int, flags: str, processors: int = 2) -> str:
    """/proc/cpuinfo's layout: one block per processor; only the first one's fields count."""
    block = ("processor\t: {n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: {model}\n"
             "stepping\t: 2\ncpu MHz\t\t: {mhz}\nflags\t\t: {flags}\n\n")
    return "".join(block.format(n=n, model=model, mhz=2100 + n, flags=flags) for n in range(processors))


def test_the_first_processor_and_its_flags_are_read():
    text = cpuinfo(207, AVX512_FLAGS) + "processor\t: 9\nflags\t\t: something else\n"
    assert core.first_processor(text)["model"] == "207"
    assert core.cpu_flags(text) == frozenset(AVX512_FLAGS.split())


def test_the_signature_follows_model_and_flags_not_clock_or_processor_count():
    base = core.cpu_signature(cpuinfo(207, AVX512_FLAGS))
    assert core.cpu_signature(cpuinfo(207, AVX512_FLAGS, processors=16)) == base
    assert core.cpu_signature(cpuinfo(207, AVX512_FLAGS.replace("avx512vl", ""))) != base
    assert core.cpu_signature(cpuinfo(143, AVX512_FLAGS)) != base


@pytest.mark.parametrize("detected, flags, expected", [
    ("Prescott", AVX512_FLAGS, "SkylakeX"),   # Emerald Rapids on OpenBLAS 0.3.21
    ("Prescott", AVX2_FLAGS, "Haswell"),
    ("Nehalem", AVX2_FLAGS, "Haswell"),
    ("Sandybridge", AVX512_FLAGS, "SkylakeX"),
    ("Prescott", OLD_FLAGS, None),            # nothing better to run
    ("Zen", AVX2_FLAGS, None),                # OpenBLAS's own AVX2 choice stands
    ("Zen", AVX512_FLAGS, None),
    ("Cooperlake", AVX512_FLAGS, None),
    ("Haswell", AVX512_FLAGS, None),
])
def test_kernels_are_chosen_only_where_openblas_fell_back(detected, flags, expected):
    assert core.choose(detected, frozenset(flags.split())) == expected


def test_no_kernels_are_recorded_without_an_openblas():
    record = core.make_record(None, None, cpuinfo(207, AVX512_FLAGS))
    assert record["coretype"] is None


@pytest.fixture
def recorded(tmp_path):
    """A venv whose record says SkylakeX for the CPU in cpu.txt."""
    info = tmp_path / "cpu.txt"
    info.write_text(cpuinfo(207, AVX512_FLAGS))
    venv = tmp_path / "venv"
    venv.mkdir()
    core.write_record(venv, core.make_record("/lib/libopenblas.so.0", "Prescott", info.read_text()))
    return venv, info


def test_apply_sets_the_recorded_kernels(recorded):
    venv, info = recorded
    environ = {}
    assert core.apply(environ, venv, str(info)) == "SkylakeX"
    assert environ == {core.VARIABLE: "SkylakeX"}


def test_apply_leaves_a_users_value(recorded):
    venv, info = recorded
    environ = {core.VARIABLE: "Haswell"}
    assert core.apply(environ, venv, str(info)) is None
    assert environ == {core.VARIABLE: "Haswell"}


def test_apply_ignores_a_record_made_on_another_cpu(recorded):
    venv, info = recorded
    info.write_text(cpuinfo(207, AVX2_FLAGS))  # the venv moved to a machine without AVX-512
    environ = {}
    assert core.apply(environ, venv, str(info)) is None
    assert environ == {}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"coretype": 3}', None])
def test_apply_never_raises_on_a_broken_or_missing_record(recorded, content):
    venv, info = recorded
    if content is None:
        (venv / core.RECORD).unlink()
    else:
        (venv / core.RECORD).write_text(content)
    environ = {}
    assert core.apply(environ, venv, str(info)) is None
    assert environ == {}


def test_the_activate_block_is_replaced_not_repeated_and_removed_when_unneeded():
    original = "deactivate () {\n    :\n}\nexport PATH\n"
    once = core.with_activate_block(original, "SkylakeX")
    twice = core.with_activate_block(once, "SkylakeX")
    assert twice == once and once.count(core.ACTIVATE_BEGIN) == 1
    assert once.startswith(original)
    assert core.with_activate_block(once, "Haswell").count("OPENBLAS_CORETYPE=Haswell") == 1
    assert core.with_activate_block(once, None) == original


def test_the_activate_block_exports_only_when_the_user_has_not(tmp_path):
    script = tmp_path / "activate"
    script.write_text(core.with_activate_block("", "SkylakeX"))
    show = f'. "{script}"; printf %s "$OPENBLAS_CORETYPE"'
    env = {k: v for k, v in os.environ.items() if k != core.VARIABLE}
    assert subprocess.run(["sh", "-c", show], env=env, capture_output=True, text=True).stdout == "SkylakeX"
    env[core.VARIABLE] = "Haswell"
    assert subprocess.run(["sh", "-c", show], env=env, capture_output=True, text=True).stdout == "Haswell"


# ----------------------------------------------------------------- the real venv and Caffe's OpenBLAS

def caffe_openblas() -> str:
    libcaffe = Path(os.path.realpath(VENV / "bin" / "caffe")).parent.parent / "lib" / "libcaffe.so"
    if not libcaffe.is_file():
        pytest.skip("Caffe is not built (make setup)")
    library = core.linked_openblas(str(libcaffe))
    if library is None:
        pytest.skip("this Caffe links another BLAS")
    return library


def test_probe_asks_openblas_itself_whatever_the_environment(monkeypatch):
    library = caffe_openblas()
    monkeypatch.delenv(core.VARIABLE, raising=False)
    own = core.probe(library)
    monkeypatch.setenv(core.VARIABLE, "Prescott" if own != "Prescott" else "Haswell")
    assert core.probe(library) == own


def test_probe_of_a_missing_library_is_a_one_line_error(tmp_path):
    with pytest.raises(core.ProbeError, match="^cannot ask .*missing.so"):
        core.probe(str(tmp_path / "missing.so"))


def test_pycaffe_in_the_venv_gets_avx2_kernels_or_better_on_an_avx2_cpu():
    """The outcome that matters: Caffe's GEMMs in a venv process started with no
    OPENBLAS_CORETYPE run on kernels that use the CPU's AVX2 (28 vs 153 GFLOP/s per core on
    Emerald Rapids, where OpenBLAS 0.3.21 falls back to Prescott by itself)."""
    library = caffe_openblas()
    if not core.AVX2 <= core.cpu_flags(core.read_cpuinfo()):
        pytest.skip("this CPU has no AVX2 and FMA")
    env = {k: v for k, v in os.environ.items() if k != core.VARIABLE}
    code = ("import ctypes, caffe; lib = ctypes.CDLL(%r); lib.openblas_get_corename.restype = ctypes.c_char_p; "
            "print(lib.openblas_get_corename().decode())" % library)
    run = subprocess.run([str(VENV / "bin" / "python"), "-c", code], env=env, capture_output=True, text=True,
                         cwd="/")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() in core.AVX2_KERNELS
    record = json.loads((VENV / core.RECORD).read_text())
    assert record["detected"] == core.probe(library)
