"""Training curves of a `caffe train` run, read from Caffe's own log and drawn as PNG.

Sec. 3.1 decides the learning-rate drops on validation accuracy, so the curves worth seeing
are the training loss (what SGD minimises) and the validation top-1 accuracy (what the plateau
schedule watches), both against the iteration. Caffe prints them as

    solver.cpp:239] Iteration 150 (5.2 iter/s, 9.5s/50 iters), loss = 1.02912
    solver.cpp:327] Iteration 400, loss = 0.6256                  (the last one)
    solver.cpp:347] Iteration 250, Testing net (#0)
    solver.cpp:418]     Test net output #0: accuracy_top1 = 0.731
    sgd_solver.cpp:191] Iteration 150, lr = 0.01

A run resumed from a snapshot appends to the same log and repeats some iterations: the last
value printed for an iteration wins. The plots are drawn with OpenCV (no plotting library).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

_TRAIN_LOSS = re.compile(r"\] Iteration (\d+)(?: \([^)]*\))?, loss = ([-+0-9.eE]+|-?nan|-?inf)")
_TESTING = re.compile(r"\] Iteration (\d+), Testing net \(#0\)")
_TEST_OUTPUT = re.compile(r"\] +Test net output #\d+: (\w+) = ([-+0-9.eE]+|-?nan|-?inf)")
_LR = re.compile(r"\] Iteration (\d+), lr = ([-+0-9.eE]+)")


@dataclass
class Curves:
    """Series of one training stage, each a sorted list of (iteration, value)."""
    loss: list[tuple[int, float]] = field(default_factory=list)
    test: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # accuracy_top1, ...
    lr: list[tuple[int, float]] = field(default_factory=list)

    @property
    def top1(self) -> list[tuple[int, float]]:
        return self.test.get("accuracy_top1", [])

    def final(self, name: str) -> float | None:
        series = self.test.get(name, [])
        return series[-1][1] if series else None


def parse_log(text: str) -> Curves:
    loss: dict[int, float] = {}
    lr: dict[int, float] = {}
    test: dict[str, dict[int, float]] = {}
    testing_at: int | None = None
    for line in text.splitlines():
        if m := _TESTING.search(line):
            testing_at = int(m.group(1))
        elif (m := _TEST_OUTPUT.search(line)) and testing_at is not None:
            test.setdefault(m.group(1), {})[testing_at] = float(m.group(2))
        elif m := _TRAIN_LOSS.search(line):
            loss[int(m.group(1))] = float(m.group(2))
        elif m := _LR.search(line):
            lr[int(m.group(1))] = float(m.group(2))
    return Curves(loss=sorted(loss.items()), lr=sorted(lr.items()),
                  test={name: sorted(values.items()) for name, values in test.items()})


def read_log(path: str | Path) -> Curves:
    return parse_log(Path(path).read_text(errors="replace"))


# --------------------------------------------------------------------------- drawing

WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (200, 200, 200)
BLUE, RED = (200, 90, 20), (40, 40, 210)  # BGR
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    step = 10 ** np.floor(np.log10(raw))
    for mult in (1, 2, 5, 10):
        if raw <= mult * step:
            step *= mult
            break
    first = np.ceil(lo / step) * step
    return [float(v) for v in np.arange(first, hi + step * 1e-6, step)]


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.0e}"


def _panel(image: np.ndarray, box: tuple[int, int, int, int], series: list[tuple[int, float]],
           x_range: tuple[float, float], title: str, colour, y_range: tuple[float, float] | None = None) -> None:
    """One line plot of `series` inside box = (left, top, right, bottom) of `image`."""
    left, top, right, bottom = box
    cv2.putText(image, title, (left, top - 10), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    cv2.rectangle(image, (left, top), (right, bottom), BLACK, 1)
    finite = [(x, y) for x, y in series if np.isfinite(y)]
    if y_range is None:
        ys = [y for _, y in finite] or [0.0, 1.0]
        lo, hi = min(ys), max(ys)
        pad = (hi - lo) * 0.05 or 0.5
        y_range = (lo - pad, hi + pad)
    x0, x1 = x_range
    y0, y1 = y_range
    x1 = x1 if x1 > x0 else x0 + 1

    def px(x: float, y: float) -> tuple[int, int]:
        return (int(round(left + (x - x0) / (x1 - x0) * (right - left))),
                int(round(bottom - (y - y0) / (y1 - y0) * (bottom - top))))

    for tick in _ticks(y0, y1):
        _, y = px(x0, tick)
        cv2.line(image, (left, y), (right, y), GREY, 1)
        cv2.putText(image, _label(tick), (left - 48, y + 4), FONT, 0.4, BLACK, 1, cv2.LINE_AA)
    for tick in _ticks(x0, x1):
        x, _ = px(tick, y0)
        cv2.line(image, (x, bottom), (x, bottom + 4), BLACK, 1)
        cv2.putText(image, _label(tick), (x - 12, bottom + 18), FONT, 0.4, BLACK, 1, cv2.LINE_AA)
    points = np.array([px(x, y) for x, y in finite], np.int32)
    if len(points) > 1:
        cv2.polylines(image, [points.reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_AA)
    for point in points:
        cv2.circle(image, tuple(int(v) for v in point), 3, colour, -1, cv2.LINE_AA)
    if not finite:
        cv2.putText(image, "no data in the log", (left + 10, (top + bottom) // 2), FONT, 0.5, RED, 1, cv2.LINE_AA)


def draw(curves: Curves, title: str, max_iter: int | None = None) -> np.ndarray:
    """A BGR image: training loss (left) and validation top-1 accuracy (right) vs iteration."""
    width, height = 960, 400
    image = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(image, title, (20, 28), FONT, 0.6, BLACK, 1, cv2.LINE_AA)
    iterations = [x for x, _ in curves.loss] + [x for x, _ in curves.top1]
    x_range = (0.0, float(max(iterations + [max_iter or 1])))
    _panel(image, (70, 70, 460, 350), curves.loss, x_range, "training loss (Caffe's average)", BLUE)
    _panel(image, (560, 70, 940, 350), curves.top1, x_range, "validation top-1 accuracy", RED, (0.0, 1.0))
    for left in (70, 560):
        cv2.putText(image, "iteration", (left + 150, 390), FONT, 0.45, BLACK, 1, cv2.LINE_AA)
    return image


def write_png(curves: Curves, title: str, path: str | Path, max_iter: int | None = None) -> Path:
    """Draw and write atomically (temp file in the same directory, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", draw(curves, title, max_iter))
    if not ok:
        raise RuntimeError("OpenCV cannot encode PNG")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(png.tobytes())
    tmp.replace(path)
    return path
