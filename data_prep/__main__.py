"""The `vgg-data` process (`python -m data_prep` and the console script). Only a process entry
point sets the environment: a module that tests or other tools import must not."""
import os
import sys

# Before numpy is first imported: its OpenBLAS otherwise starts a thread per core at import,
# 0.15 s of CPU for nothing (data prep does no matrix work; each worker keeps to one core).
# A user's own OPENBLAS_NUM_THREADS is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
