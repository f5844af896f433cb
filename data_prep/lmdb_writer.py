"""One LMDB per training scale, written by one process in batched transactions, published
whole or not at all (see atomic.py)."""
from __future__ import annotations

import os

import lmdb

from .atomic import publish_dir, remove, temp_path

# Address space reserved for each LMDB. Without `writemap` the file grows only as records
# are written, so a large map costs nothing on a 64-bit system.
MAP_SIZE = 1 << 40


def lmdb_name(side: int) -> str:
    return f"S{side}_lmdb"


class ScaleLmdbs:
    """`<out>/S<S>_lmdb` for each S, built under temporary names."""

    def __init__(self, out: str, scales, batch_records: int = 1000):
        self.scales = tuple(scales)
        self.final = {s: os.path.join(out, lmdb_name(s)) for s in self.scales}
        self.tmp = {s: temp_path(path) for s, path in self.final.items()}
        self.batch_records = batch_records
        self.records = 0
        self.value_bytes = {s: 0 for s in self.scales}
        self._pending = 0
        self.envs = {}
        self.txns = {}
        try:
            for s in self.scales:
                # sync off: a crash loses the temporary database anyway; finish() syncs once.
                self.envs[s] = lmdb.open(self.tmp[s], map_size=MAP_SIZE, subdir=True, sync=False,
                                         metasync=False, writemap=False, meminit=False)
                self.txns[s] = self.envs[s].begin(write=True)
        except BaseException:
            self.discard()
            raise

    def put(self, key: bytes, values) -> None:
        """One record per scale under the same key; keys must come in increasing order."""
        for s, value in zip(self.scales, values):
            if not self.txns[s].put(key, value, append=True):
                raise ValueError(f"duplicate or unordered key {key!r}")
            self.value_bytes[s] += len(value)
        self.records += 1
        self._pending += 1
        if self._pending >= self.batch_records:
            self._commit(reopen=True)

    def _commit(self, reopen: bool) -> None:
        for s in self.scales:
            txn = self.txns.pop(s)
            txn.commit()
            if reopen:
                self.txns[s] = self.envs[s].begin(write=True)
        self._pending = 0

    def finish(self) -> None:
        """Commit and flush everything to disk; the databases are then complete."""
        self._commit(reopen=False)
        for env in self.envs.values():
            env.sync(True)
            env.close()
        self.envs = {}

    def publish(self) -> None:
        for s in self.scales:
            publish_dir(self.tmp[s], self.final[s])

    def discard(self) -> None:
        for txn in self.txns.values():
            try:
                txn.abort()
            except lmdb.Error:
                pass
        self.txns = {}
        for env in self.envs.values():
            try:
                env.close()
            except lmdb.Error:
                pass
        self.envs = {}
        for path in self.tmp.values():
            remove(path)
