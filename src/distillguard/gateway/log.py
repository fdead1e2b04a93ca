"""The decision log: every decision with its reasons, as JSON Lines, without loss.

Each decision is appended with one write() to a file opened O_APPEND before the decision
is returned, so a decision the caller acted on is in the operating system's hands even
if the process dies the next instant; the file is fsync'ed at most `sync_every` seconds
apart (and on close), so a machine crash loses at most that much. Each process writes its
own files (`decisions-<host>-<pid>-<start>-<n>.jsonl`), started anew past `max_bytes`.
The batch scan reads them back (`distillguard ingest --decisions`), closing the loop.

A line holds no prompt or response text; identifiers are the caller's own ids (account,
request), escaped to ASCII by the JSON encoder.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

# Decision log lines carry this version: the ingest reads what it knows.
LOG_VERSION = 1
PREFIX = "decisions-"


class DecisionLog:
    def __init__(self, folder: str | Path, *, max_bytes: int = 256 << 20, sync_every: float = 1.0):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.sync_every = sync_every
        self._stem = f"{PREFIX}{socket.gethostname()}-{os.getpid()}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        self._lock = threading.Lock()
        self._n = 0
        self._fd = -1
        self._size = 0
        self._synced = time.monotonic()
        self.rows = 0
        self._open_next()

    def _open_next(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
        self._n += 1
        path = self.folder / f"{self._stem}-{self._n:04d}.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = os.fstat(self._fd).st_size
        self.path = path

    def write(self, record: dict) -> None:
        line = (json.dumps({"v": LOG_VERSION, **record}, ensure_ascii=True, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._size + len(line) > self.max_bytes and self._size:
                self._open_next()
            written = os.write(self._fd, line)
            while written < len(line):  # a regular file takes all at once; be sure regardless
                written += os.write(self._fd, line[written:])
            self._size += len(line)
            self.rows += 1
            now = time.monotonic()
            if now - self._synced >= self.sync_every:
                os.fsync(self._fd)
                self._synced = now

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1
