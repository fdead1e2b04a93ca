"""Reading a scan folder: what the report and the exports consume (docs/evidence.md)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.engine import literal
from distillguard.linking.rules import default_rules
from distillguard.scoring.scorecard import default_scorecard
from distillguard.verdicts.actions import default_ladder
from distillguard.verdicts.scan import OUTPUTS


class NotAScan(ValueError):
    pass


class ScanDir:
    """A scan's outputs: `meta` is scan.json, `table(name)` one of its Parquet tables."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta = self.path / "scan.json"
        if not meta.is_file():
            raise NotAScan(f"{path}: not a scan folder (no scan.json); run distillguard scan --out {path}")
        self.meta: dict = json.loads(meta.read_text())
        missing = [n for n in OUTPUTS if not (self.path / f"{n}.parquet").is_file()]
        if missing or "scan_id" not in self.meta:
            raise NotAScan(f"{path}: written by an older distillguard (missing {', '.join(missing) or 'scan_id'}); "
                           "scan again")

    def table(self, name: str) -> pa.Table:
        return pq.read_table(self._file(name))

    def sql(self, name: str) -> str:
        """The table as a relation for the engine (large tables: evidence)."""
        return f"read_parquet({literal(str(self._file(name)))})"

    def _file(self, name: str) -> Path:
        if name not in OUTPUTS:
            raise KeyError(f"no table {name!r}; a scan folder holds {', '.join(OUTPUTS)}")
        return self.path / f"{name}.parquet"


@functools.cache
def reason_texts() -> dict[str, str]:
    """Every reason code a verdict can carry -> its meaning, from the reviewed files."""
    texts = {t.code: t.about for t in default_scorecard()}
    texts |= default_rules().about()
    texts |= {r.code: r.about for r in default_ladder()}
    return texts


def reason_text(code: str) -> str:
    return reason_texts().get(code, code)
