"""Build the training data of Sec. 3.1: one LMDB per scale S, the statistics, a skip report.

Sec. 3.1 trains at fixed S = 256 and S = 384 and with S jittered in [256, 512]; the jittered
nets read the S = 512 LMDB and the patched DataTransformer shrinks each image to its drawn S,
so training only ever downsamples. `build()` writes, per split, into OUT:
    S<S>_lmdb      Caffe Datum records (encoded JPEG, label), keys `%08d_<path>` (Caffe's
                   convert_imageset style), in a seeded shuffled order for training
    stats.json     the training set's mean pixel and colour PCA (data_prep/stats.py schema)
    mean.binaryproto  the mean pixel as a 1x3x1x1 BlobProto
    report.txt     one line per skipped input: path<TAB>reason<TAB>detail

Work split: worker processes read, decode, rescale and encode (each image once, for every
scale); this process alone writes the LMDBs, in input order. Outputs are built under
temporary names and published only when complete (atomic.py); stats.json is published last
and removed first, so its presence marks a complete set.
"""
from __future__ import annotations

import collections
import contextlib
import ctypes
import itertools
import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

import cv2
import lmdb

from . import area_resize, atomic
from .caffe_proto import CaffeMissing, load_caffe_pb2
from .convert import ConvertOptions, Converted, convert_image, read_image_file
from .imagefile import CORRUPT, BadImage
from .lmdb_writer import ScaleLmdbs, lmdb_name
from .progress import Progress
from .sources import Inputs, Skipped, read_inputs
from .stats import Stats, save_stats
from .statistics import StatsAccumulator, mean_blobproto

STATS_FILE = "stats.json"
MEAN_FILE = "mean.binaryproto"
REPORT_FILE = "report.txt"


class BuildError(RuntimeError):
    """The run failed as a whole; nothing half-written was published."""


class _NothingWritten(Exception):
    pass


@dataclass(frozen=True)
class BuildConfig:
    root: str
    listing: str                    # a list file or a class-folder tree
    out: str
    options: ConvertOptions
    classes_file: str | None = None
    num_classes: int | None = None
    shuffle: bool = True
    seed: int = 0
    workers: int = 0                # 0: one per available core
    batch_records: int = 1000       # records per LMDB transaction
    progress: bool = True
    # Load caffe_pb2 without pycaffe (caffe_proto.py): for command-line runs only.
    standalone_proto: bool = False


@dataclass
class BuildResult:
    out: str
    scales: tuple[int, ...]
    inputs: int
    written: int
    skipped: list[Skipped]
    notes: Counter
    value_bytes: dict[int, int]
    file_bytes: dict[int, int]
    seconds: float
    workers: int
    stats: Stats | None
    ignored: int = 0
    leftovers_removed: list[str] = field(default_factory=list)

    @property
    def reasons(self) -> Counter:
        return Counter(s.reason for s in self.skipped)

    @property
    def bad_fraction(self) -> float:
        return len(self.skipped) / self.inputs if self.inputs else 0.0


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# Worker side: the options arrive once per process, then only (index, path) per image.
_options: ConvertOptions | None = None


def _keep_big_buffers() -> None:
    """Stop glibc from mapping and unmapping every decoded image: left to itself, a fresh
    worker gets each ~0.5 MB buffer from mmap, and the page faults of zeroing them cost a
    third as much CPU as the decoding (glibc only; elsewhere nothing changes)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 << 20)
        libc.mallopt(m_trim_threshold, 128 << 20)
    except (OSError, AttributeError):
        pass


def _init_worker(options: ConvertOptions, worker_process: bool = True) -> None:
    global _options
    _options = options
    # One core per worker: OpenCV's own threads would only compete with the other workers.
    cv2.setNumThreads(1)
    _keep_big_buffers()
    if worker_process:
        # Ctrl-C is the parent's to handle (it stops the workers and removes temporary outputs).
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _convert_task(task: tuple[int, str]) -> Converted | BadImage:
    index, full_path = task
    try:
        return convert_image(read_image_file(full_path), _options, index)
    except BadImage as exc:
        return exc
    except cv2.error as exc:  # OpenCV's own checks (e.g. its size limits) on a hostile file
        return BadImage(CORRUPT, "OpenCV: " + " ".join(str(exc).split())[-200:])


# Results converted but not yet written, at most: without a bound, a writer slower than
# the workers (a slow disk) would let finished records pile up in memory.
MAX_IN_FLIGHT_PER_WORKER = 64
CHUNK = 16  # tasks per message to a worker: fewer, larger messages cost less CPU


def _worker_loop(conn, options: ConvertOptions) -> None:
    """A worker process: chunks of tasks in, their results out, until None or a closed pipe."""
    _init_worker(options)
    while True:
        try:
            chunk = conn.recv()
        except EOFError:
            return
        if chunk is None:
            return
        conn.send([_convert_task(task) for task in chunk])


@contextlib.contextmanager
def _converter(options: ConvertOptions, workers: int):
    """A function from tasks to their results, in task order, computed by `workers` processes.

    Chunk k of CHUNK tasks goes to worker k mod `workers` through that worker's own pipe, and
    the results are read back in chunk order, so they come out in task order with no
    reordering and no helper thread. (multiprocessing.Pool's worker-handler thread wakes on
    every result a worker sends: here it cost as much CPU as the LMDB writes.)
    """
    if workers <= 1:
        _init_worker(options, worker_process=False)
        yield lambda tasks: map(_convert_task, tasks)
        return
    # fork where there is one: workers start at once, with the modules already loaded. They
    # are forked before this process imports Caffe or opens an LMDB (see build()).
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    processes, pipes = [], []
    # OpenCV's thread pool does not survive a fork: a worker forked while this process's pool
    # is alive (any earlier parallel cv2 call here, e.g. a caller's own resizing) hangs in
    # cv2.setNumThreads. Stopping the pool across the fork gives the workers none to inherit.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    # Loaded (on a new machine: compiled) once here, so that forked workers inherit it.
    area_resize.available()
    try:
        for _ in range(workers):
            ours, theirs = context.Pipe()
            process = context.Process(target=_worker_loop, args=(theirs, options), daemon=True)
            process.start()
            theirs.close()
            processes.append(process)
            pipes.append(ours)
    except BaseException:
        for process in processes:
            process.terminate()
        raise
    finally:
        cv2.setNumThreads(threads)
    depth = max(1, MAX_IN_FLIGHT_PER_WORKER // CHUNK)  # chunks handed to one worker, at most

    def died(worker: int, chunk: list) -> BuildError:
        processes[worker].join(timeout=1)
        return BuildError(f"worker process {processes[worker].pid} died (exit code {processes[worker].exitcode})"
                          f" while converting {chunk[0][1]} or one of the {len(chunk) - 1} images after it")

    def results(tasks):
        remaining = iter(tasks)
        chunks = iter(lambda: list(itertools.islice(remaining, CHUNK)), [])
        pending = collections.deque()  # chunks sent, in order; chunk k went to worker k % workers
        for k, chunk in enumerate(itertools.islice(chunks, depth * workers)):
            pipes[k % workers].send(chunk)
            pending.append(chunk)
        done = 0
        while pending:
            chunk, worker = pending.popleft(), done % workers
            try:
                converted = pipes[worker].recv()
            except (EOFError, OSError):
                raise died(worker, chunk) from None
            done += 1
            following = next(chunks, None)  # chunk done + len(pending): the same worker's turn
            if following is not None:
                try:
                    pipes[worker].send(following)
                except OSError:
                    raise died(worker, following) from None
                pending.append(following)
            yield from converted

    try:
        yield results
        for pipe in pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for process in processes:
            process.join(timeout=5)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
        for pipe in pipes:
            pipe.close()


def _datum_bytes(caffe_pb2, height: int, width: int, data: bytes, label: int) -> bytes:
    return caffe_pb2.Datum(channels=3, height=height, width=width, data=data, label=label,
                           encoded=True).SerializeToString()


def _prepare_out(out: str, scales) -> list[str]:
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"cannot create the output directory {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise BuildError(f"the output directory is not writable: {out}")
    names = [lmdb_name(s) for s in scales] + [STATS_FILE, MEAN_FILE, REPORT_FILE]
    try:
        return atomic.remove_leftovers(out, names)
    except atomic.OutputBusy as exc:
        raise BuildError(str(exc)) from None


def report_text(skipped) -> str:
    return "".join(f"{s.where}\t{s.reason}\t{s.detail}\n" for s in skipped)


def build(config: BuildConfig) -> BuildResult:
    """Convert, write and publish; BuildError (nothing published) when the run fails."""
    start = time.monotonic()
    options = config.options
    inputs: Inputs = read_inputs(config.root, config.listing, config.classes_file, config.num_classes)
    order = list(inputs.entries)
    if config.shuffle:
        random.Random(config.seed).shuffle(order)
    tasks = [(entry.index, os.path.join(config.root, entry.path)) for entry in order]
    workers = max(1, min(config.workers or default_workers(), len(tasks) or 1))
    with _converter(options, workers) as convert:
        return _write(config, inputs, order, convert(tasks), workers, start)


def _write(config: BuildConfig, inputs: Inputs, order, results, workers: int, start: float) -> BuildResult:
    options = config.options
    try:
        caffe_pb2 = load_caffe_pb2(standalone=config.standalone_proto)
    except CaffeMissing as exc:
        raise BuildError(str(exc)) from None
    leftovers = _prepare_out(config.out, options.scales)
    total = len(inputs.entries) + len(inputs.skipped)
    failed: list[tuple[int, Skipped]] = []  # (input position, why): reported in input order
    notes: Counter = Counter()
    accumulator = StatsAccumulator(options.seed)
    progress = Progress(len(order), enabled=config.progress)

    try:
        lmdbs = ScaleLmdbs(config.out, options.scales, config.batch_records)
    except (OSError, lmdb.Error) as exc:
        raise BuildError(f"cannot create the LMDBs in {config.out}: {_describe(exc)}") from None
    try:
        for entry, result in zip(order, results):
            if isinstance(result, BadImage):
                failed.append((entry.index, Skipped(entry.path, result.reason, result.detail)))
            else:
                key = f"{lmdbs.records:08d}_".encode() + os.fsencode(entry.path)
                lmdbs.put(key, [_datum_bytes(caffe_pb2, h, w, data, entry.label)
                                for h, w, data in result.records])
                accumulator.add(result)
                notes.update(result.notes)
            progress.update(progress.done + 1, len(failed))
        progress.close()
        skipped = inputs.skipped + [s for _, s in sorted(failed, key=lambda f: f[0])]
        report = report_text(skipped)
        if lmdbs.records == 0:
            atomic.write_file(os.path.join(config.out, REPORT_FILE), report.encode("utf-8", "surrogateescape"))
            raise _NothingWritten(f"no image could be converted ({len(skipped)} skipped):"
                                  f" see {os.path.join(config.out, REPORT_FILE)}")
        lmdbs.finish()
        stats = accumulator.result()
        # stats.json marks a complete set: take it away while the set changes.
        atomic.remove(os.path.join(config.out, STATS_FILE))
        atomic.write_file(os.path.join(config.out, REPORT_FILE), report.encode("utf-8", "surrogateescape"))
        atomic.write_file(os.path.join(config.out, MEAN_FILE), mean_blobproto(stats.mean_bgr, caffe_pb2))
        lmdbs.publish()
        save_stats(stats, os.path.join(config.out, STATS_FILE))
    except _NothingWritten as exc:
        lmdbs.discard()
        raise BuildError(str(exc)) from None
    except (OSError, lmdb.Error) as exc:
        lmdbs.discard()
        raise BuildError(f"writing {config.out} failed: {_describe(exc)} ({_free_space(config.out)});"
                         f" temporary outputs removed") from None
    except BaseException:
        lmdbs.discard()
        raise

    file_bytes = {s: os.path.getsize(os.path.join(lmdbs.final[s], "data.mdb")) for s in options.scales}
    return BuildResult(out=config.out, scales=options.scales, inputs=total, written=lmdbs.records,
                       skipped=skipped, notes=notes, value_bytes=dict(lmdbs.value_bytes),
                       file_bytes=file_bytes, seconds=time.monotonic() - start, workers=workers,
                       stats=stats, ignored=inputs.ignored, leftovers_removed=leftovers)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f" ({exc.filename})" if exc.filename else "")
    return " ".join(str(exc).split()) or type(exc).__name__


def _free_space(path: str) -> str:
    """How much room is left there: LMDB reports a full disk as an I/O error."""
    try:
        fs = os.statvfs(path)
    except OSError:
        return "free space unknown"
    return f"{fs.f_bavail * fs.f_frsize / 1e9:.2f} GB free there"


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def summary(result: BuildResult) -> str:
    rate = result.written / result.seconds if result.seconds > 0 else 0.0
    lines = [f"Wrote {result.written} of {result.inputs} images to {result.out} in {result.seconds:.1f} s"
             f" ({rate:.1f} img/s, {result.workers} worker{'s' if result.workers != 1 else ''}):"]
    for s in result.scales:
        lines.append(f"  S={s:<5d} {lmdb_name(s):<12s} {result.written} records, JPEG data"
                     f" {_size(result.value_bytes[s])}, LMDB file {_size(result.file_bytes[s])}")
    if result.skipped:
        lines.append(f"Skipped {len(result.skipped)} ({100 * result.bad_fraction:.2f}%), listed in"
                     f" {os.path.join(result.out, REPORT_FILE)}:")
        lines += [f"  {reason:<22s} {count}" for reason, count in sorted(result.reasons.items())]
    else:
        lines.append("Skipped none.")
    if result.notes:
        lines.append("Notes on the images written:")
        lines += [f"  {note:<34s} {count}" for note, count in sorted(result.notes.items())]
    if result.ignored:
        lines.append(f"Ignored {result.ignored} files without an image extension in the class tree.")
    if result.leftovers_removed:
        lines.append(f"Removed leftovers of an interrupted run: {', '.join(result.leftovers_removed)}")
    stats = result.stats
    lines.append(f"Mean pixel (BGR) {[round(v, 3) for v in stats.mean_bgr]} over {stats.num_pixels} pixels"
                 f" at S={result.scales[0]}; colour PCA eigenvalues"
                 f" {[round(v, 5) for v in stats.pca.eigenvalues]} from {stats.pca.sample_pixels} sampled pixels:"
                 f" {os.path.join(result.out, STATS_FILE)}")
    return "\n".join(lines)
