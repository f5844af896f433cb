"""Outputs that are complete or absent: written under a temporary name in the same directory,
then renamed over the final path (os.replace is atomic within a file system)."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def replacing(path: str | Path, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary path to write; on success it becomes `path`, on error it is removed.

    suffix: the temporary name's ending, for writers that insist on one (np.savez: ".npz").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as tmp:
        Path(tmp).write_text(text)
