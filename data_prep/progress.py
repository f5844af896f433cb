"""A progress line with images/s and ETA: redrawn in place on a terminal, a line every
`interval` seconds in a log (make, CI)."""
from __future__ import annotations

import sys
import time


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    def __init__(self, total: int, stream=None, enabled: bool = True, interval: float | None = None,
                 width: int = 30):
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.2 if self.tty else 10.0)
        self.width = width
        self.start = time.monotonic()
        self._last = -float("inf")
        self.done = 0
        self.bad = 0

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.done / elapsed
        fraction = self.done / self.total if self.total else 1.0
        filled = int(self.width * fraction)
        eta = format_duration((self.total - self.done) / rate) if rate > 0 else "?"
        bad = f", {self.bad} skipped" if self.bad else ""
        return (f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total}"
                f" {100 * fraction:3.0f}% {rate:7.1f} img/s ETA {eta}{bad}")

    def update(self, done: int, bad: int) -> None:
        self.done, self.bad = done, bad
        now = time.monotonic()
        if self.enabled and now - self._last >= self.interval:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw()
            if self.tty:
                self.stream.write("\n")
            self.stream.flush()
