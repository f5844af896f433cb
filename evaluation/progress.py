"""A progress bar on stderr for long evaluations (standard library only).

On a terminal the bar redraws in place; otherwise (a log file, CI) it prints a line at
every tenth of the work, so logs stay short.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, label: str, stream: TextIO | None = None, enabled: bool = True):
        self.total = max(total, 0)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.done = 0
        self.start = time.monotonic()
        self._interactive = enabled and getattr(self.stream, "isatty", lambda: False)()
        self._next_line = 0

    def advance(self, count: int = 1, note: str = "") -> None:
        self.done += count
        if not self.enabled:
            return
        if self._interactive:
            self.stream.write("\r" + self._line(note))
            self.stream.flush()
        elif self.done >= self._next_line or self.done >= self.total:
            self.stream.write(self._line(note) + "\n")
            self.stream.flush()
            self._next_line = self.done + max(1, self.total // 10)

    def close(self) -> None:
        if self.enabled and self._interactive:
            self.stream.write("\n")
            self.stream.flush()

    def _line(self, note: str) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        width = 30
        filled = int(width * self.done / self.total) if self.total else width
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta_text = "?" if eta != eta else f"{int(eta) // 60}m{int(eta) % 60:02d}s"
        line = (f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"{rate:.2f} img/s eta {eta_text}")
        return line + (f" ({note})" if note else "")
