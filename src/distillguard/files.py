"""Writing an output file atomically: a reader never sees half a file, and a failed
write leaves the previous file as it was."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


@contextlib.contextmanager
def atomic_text(out: str | Path, *, private: bool = False, newline: str | None = "\n") -> Iterator[TextIO]:
    """A text file written beside `out` and renamed onto it when the block ends without error.

    private: readable by its owner only (threat intelligence marked TLP, until someone shares
    it on purpose); otherwise the usual 0644, for the analysts an output is for."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as f:
            yield f
        os.chmod(tmp, 0o600 if private else 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
