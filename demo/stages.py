"""Stage bookkeeping of the demo: banners, wall time, reuse of finished stages, logs, progress.

A stage that finishes writes `<work>/stamps/<key>.json` holding a signature of everything it
was made from (its parameters and the signatures of the outputs of the stages it read). A later
run whose stage has the same signature, with its outputs still there, reuses it and says so; a
changed input, a stage before it made again, or FORCE redoes it. Each external command (Caffe,
vgg-data, vgg-eval, ...) writes its whole output to `<work>/logs/<key>.log` (`<key>.<n>.log`
when a stage runs several), whose path is printed; the console shows one progress line,
redrawn in place on a terminal, every 15 s in a log.

CPU slots: a machine with `slots` cores runs the foreground stage and, beside it, commands of
background stages (`submit`), at a lower priority: the evaluation of a trained model runs while
the next model trains. `caffe train`, the critical path, keeps Caffe's OpenMP thread per core;
each vgg-eval runs one thread (EVAL_ENV) in its slot. `drain()` waits for the
background stages with every slot.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from data_prep import atomic

Command = tuple[Sequence[str], "Path | None"]  # argv, cwd
BACKGROUND_NICE = 10
# Each vgg-eval takes one slot, so one thread: Caffe's OpenMP would otherwise start a thread per
# core in every process, and two evaluations (or one beside `caffe train`) then spin at each
# other's barriers: two dense evaluations of the mini D at Q=32 side by side scored 293 images/s
# each with two threads, 1,075 with one.
EVAL_ENV = {"OMP_NUM_THREADS": "1"}
ProgressFn = Callable[[str], "str | None"]


class StageError(RuntimeError):
    pass


def signature(*parts) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_text(path: Path, text: str) -> Path:
    """Atomically (data_prep.atomic): a reader sees the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_file(str(path), text.encode())
    return path


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    return write_text(path, "".join(line + "\n" for line in lines))


def write_json(path: Path, data) -> None:
    write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@dataclass
class StageRecord:
    key: str
    title: str
    status: str  # "ran", "ran in the background" or "reused"
    seconds: float  # wall time in this run (reused: the check only)
    made_seconds: float  # wall time of the run that made the outputs
    log: str | None = None
    info: dict = field(default_factory=dict)
    span: tuple[float, float] | None = None  # (start, end) epoch seconds of the run that made it


@dataclass
class _Process:
    popen: subprocess.Popen
    log: Path
    argv: Sequence[str]
    progress: ProgressFn | None
    owner: "_Background | None" = None


@dataclass
class _Background:
    key: str
    title: str
    number: int
    sig: str
    pending: list[tuple[Command, Path]]
    finish: Callable[[], dict | None]
    progress: ProgressFn | None
    env: dict | None
    running: int = 0
    started: float | None = None


class Runner:
    def __init__(self, work: Path, force: bool = False, slots: int = 1, stream=None):
        self.work = work
        self.force = force
        self.slots = max(1, slots)
        self.stream = stream if stream is not None else sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.records: list[StageRecord] = []
        self.signatures: dict[str, str] = {}
        self.number = 0
        self.background: list[_Background] = []
        self.processes: list[_Process] = []  # every command running now, foreground and background
        self._last_line = 0.0

    # ------------------------------------------------------------------ paths
    def stamp_path(self, key: str) -> Path:
        return self.work / "stamps" / f"{key}.json"

    def log_path(self, key: str) -> Path:
        return self.work / "logs" / f"{key}.log"

    def rel(self, path: Path | str) -> str:
        try:
            return os.path.relpath(Path(path))
        except ValueError:
            return str(path)

    def say(self, text: str = "") -> None:
        self._clear_line()
        print(text, file=self.stream, flush=True)

    # ------------------------------------------------------------------ stages
    def stamp(self, key: str) -> dict | None:
        try:
            return json.loads(self.stamp_path(key).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def _begin(self, key: str, title: str, params, inputs: Sequence[str], outputs: Callable[[], Iterable[Path]],
               note: str = "") -> tuple[str, StageRecord | None]:
        """Banner, signature and the reuse check: (signature, the record when reused)."""
        self.number += 1
        sig = signature(key, params, [self.signatures[k] for k in inputs])
        self.signatures[key] = sig  # while it runs; afterwards, that of the outputs it made
        banner = f"[{self.number}] {title}"
        self.say(f"\n=== {banner} " + "=" * max(3, 76 - len(banner)))
        stamp = self.stamp(key)
        if not self.force and stamp and stamp.get("signature") == sig and all(p.exists() for p in outputs()):
            span = (stamp["ended"] - stamp["seconds"], stamp["ended"]) if "ended" in stamp else None
            record = StageRecord(key, title, "reused", 0.0, stamp.get("seconds", 0.0), stamp.get("log"),
                                 stamp.get("info", {}), span)
            self.say(f"    reused: outputs of an earlier run are up to date "
                     f"(made in {format_seconds(record.made_seconds)}); FORCE=1 redoes it")
            self.records.append(record)
            self.signatures[key] = signature(sig, stamp.get("finished"))
            return sig, record
        self.stamp_path(key).unlink(missing_ok=True)
        if note:
            self.say(f"    {note}")
        return sig, None

    def _finish(self, key: str, title: str, sig: str, seconds: float, info: dict | None, status: str,
                number: int | None = None) -> StageRecord:
        log = self.log_path(key)
        several = sorted(log.parent.glob(f"{key}.*.log"))
        log_text = self.rel(log) if log.exists() else (self.rel(log.with_suffix(".*.log")) if several else None)
        # the stages that read these outputs are redone whenever they are made again
        finished = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {time.time_ns()}"
        ended = time.time()
        write_json(self.stamp_path(key), {"signature": sig, "seconds": seconds, "log": log_text,
                                          "info": info or {}, "finished": finished, "ended": ended})
        self.signatures[key] = signature(sig, finished)
        record = StageRecord(key, title, status, seconds, seconds, log_text, info or {}, (ended - seconds, ended))
        self.records.append(record)
        where = f"[{number}] {title}: " if number is not None else ""
        self.say(f"    {where}done in {format_seconds(seconds)}" + (" (in the background)" if number else ""))
        return record

    def stage(self, key: str, title: str, params, inputs: Sequence[str], outputs: Callable[[], Iterable[Path]],
              run: Callable[["Runner", str], dict | None]) -> StageRecord:
        """Run `run(runner, key)` unless a stamp with the same signature and its outputs exist.

        params: what the stage is made from (JSON-able); inputs: keys of the stages it reads.
        run returns extra info for the report (kept in the stamp).
        """
        sig, reused = self._begin(key, title, params, inputs, outputs)
        if reused:
            return reused
        start = time.monotonic()
        info = run(self, key)
        return self._finish(key, title, sig, time.monotonic() - start, info, "ran")

    def submit(self, key: str, title: str, params, inputs: Sequence[str], outputs: Callable[[], Iterable[Path]],
               commands: Callable[[], Sequence[Command]], finish: Callable[[], dict | None] | None = None,
               progress: ProgressFn | None = None, env: dict | None = None) -> None:
        """A stage whose commands run in the background, on the slots the foreground leaves free.
        `commands()` is called (and may prepare the outputs' place) only when it is not reused."""
        sig, reused = self._begin(key, title, params, inputs, outputs,
                                  note="queued: runs beside the next stages, on the CPU they leave free")
        if reused:
            return
        jobs = list(commands())
        logs = self._logs(key, len(jobs))
        for log in logs:
            self.say(f"    log: {self.rel(log)}")
        # started by the next wait, which knows how many slots the foreground takes
        self.background.append(_Background(key, title, self.number, sig, list(zip(jobs, logs)),
                                           finish or (lambda: None), progress, env))

    def drain(self) -> None:
        """Wait for every background stage, using all the slots."""
        if not self.background:
            return
        self.say(f"\n=== waiting for the background stages: {', '.join(b.title for b in self.background)}")
        self._wait(lambda: not self.background, foreground=0)

    # ------------------------------------------------------------------ commands
    def _logs(self, key: str, count: int) -> list[Path]:
        logs = [self.log_path(key)] if count == 1 else \
            [self.log_path(key).with_suffix(f".{n}.log") for n in range(1, count + 1)]
        logs[0].parent.mkdir(parents=True, exist_ok=True)
        return logs

    def _start(self, command: Command, log: Path, append: bool, env: dict | None, progress: ProgressFn | None,
               owner: _Background | None = None, nice: int = 0) -> _Process:
        argv, cwd = command
        with open(log, "a" if append else "w") as handle:
            handle.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} in {cwd or os.getcwd()}:\n"
                         f"# {' '.join(map(str, argv))}\n")
            handle.flush()
            popen = subprocess.Popen([str(a) for a in argv], cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})},
                                     preexec_fn=(lambda: os.nice(nice)) if nice else None)
        process = _Process(popen, log, argv, progress, owner)
        self.processes.append(process)
        return process

    def command(self, key: str, argv: Sequence[str], *, cwd: Path | None = None, progress: ProgressFn | None = None,
                env: dict | None = None, append: bool = False) -> None:
        """Run one external command in the foreground, its output in the stage's log."""
        self.commands(key, [(argv, cwd)], progress=progress, env=env, append=append)

    def commands(self, key: str, jobs: Sequence[Command], *, progress: ProgressFn | None = None,
                 env: dict | None = None, append: bool = False) -> None:
        """Run foreground commands one after the other (background ones beside them); stop at
        the first failure with the log's last lines."""
        for (argv, cwd), log in zip(jobs, self._logs(key, len(jobs))):
            self.say(f"    log: {self.rel(log)}")
            process = self._start((argv, cwd), log, append, env, progress)
            self._wait(lambda: process.popen.poll() is not None, foreground=1)
            self._check(process)

    def _check(self, process: _Process) -> None:
        if process in self.processes:
            self.processes.remove(process)
        if process.popen.returncode != 0:
            tail = process.log.read_text(errors="replace").splitlines()[-15:]
            raise StageError(f"{Path(str(process.argv[0])).name} {' '.join(map(str, process.argv[1:3]))} ... "
                             f"failed (exit {process.popen.returncode}); last lines of {self.rel(process.log)}:\n    "
                             + "\n    ".join(tail))

    def _pump(self, foreground: int) -> None:
        """Reap finished background commands, finish complete background stages, start more."""
        for process in [p for p in self.processes if p.owner is not None and p.popen.poll() is not None]:
            self._check(process)
            process.owner.running -= 1
        for stage in [b for b in self.background if not b.pending and not b.running]:
            self.background.remove(stage)
            info = stage.finish()
            self._finish(stage.key, stage.title, stage.sig, time.monotonic() - (stage.started or time.monotonic()),
                         info, "ran in the background", number=stage.number)
        busy = foreground + sum(1 for p in self.processes if p.owner is not None)
        for stage in self.background:
            while stage.pending and busy < self.slots:
                command, log = stage.pending.pop(0)
                stage.started = stage.started or time.monotonic()
                # beside a training, a lower priority: the chain of trainings is the critical path
                self._start(command, log, False, stage.env, stage.progress, owner=stage,
                            nice=BACKGROUND_NICE if foreground else 0)
                stage.running += 1
                busy += 1

    def _wait(self, done: Callable[[], bool], foreground: int) -> None:
        try:
            while True:
                self._pump(foreground)
                if done():
                    break
                time.sleep(0.5)
                self._show_progress()
        except BaseException:
            self.stop()
            raise
        self._clear_line()

    def stop(self) -> None:
        """Terminate every command still running (Ctrl-C, a failure)."""
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.terminate()
        for process in self.processes:
            try:
                process.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.popen.kill()
        self.processes.clear()

    def _show_progress(self) -> None:
        now = time.monotonic()
        if not self.tty and now - self._last_line < 15:
            return
        parts = []
        for process in self.processes:
            if process.progress is None:
                continue
            line = process.progress(process.log.read_text(errors="replace"))
            if line:
                parts.append((f"[{process.owner.number}] " if process.owner else "") + line)
        if not parts:
            return
        text = " | ".join(parts)
        if self.tty:
            self.stream.write("\r    " + text[:150].ljust(150))
            self.stream.flush()
            self._dirty = True
        else:
            print("    " + text, file=self.stream, flush=True)
        self._last_line = now

    def _clear_line(self) -> None:
        if self.tty and getattr(self, "_dirty", False):
            self.stream.write("\r" + " " * 155 + "\r")
            self.stream.flush()
            self._dirty = False


def last_progress_line(text: str) -> str | None:
    """The last non-empty line of a log (the tools print their own progress lines)."""
    for line in reversed(text.replace("\r", "\n").splitlines()):
        if line.strip() and not line.startswith("#"):
            return line.strip()
    return None
