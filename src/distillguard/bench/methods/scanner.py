"""distillguard's own scanner as a benchmark method: `scan` at its shipped configuration.

Its decision is per campaign (a community flagged by its calibrated p-value and
effect floor), so its score ranks accounts the way an analyst reading its output
would review them: flagged accounts first, then by the risk of the community they
sit in, then by their own score's percentile. Precision-recall curves and fixed
false-positive operating points sweep that order.
"""

from __future__ import annotations

import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillguard.bench.methods import WorldView, parameters, verdicts
from distillguard.verdicts import scan


def run(view: WorldView, params: dict) -> object:
    parameters(params, "scanner", ())  # configured by its own files (links.yaml, scorecard.yaml), not here
    out = view.workdir / "scan"
    scan(view.events_sql, view.accounts_sql, out, input_fingerprint=f"bench:{view.key}", until=view.until)
    t = pq.read_table(out / "accounts.parquet", columns=["account_id", "flagged", "risk", "percentile", "campaign_id"])
    flagged = t.column("flagged")
    # Lexicographic (flagged, risk, percentile) in one number: risk and percentile are in [0, 1].
    score = pc.add(pc.cast(flagged, "float64"),
                   pc.add(pc.multiply(pc.fill_null(t.column("risk"), 0.0), 0.5),
                          pc.multiply(pc.fill_null(t.column("percentile"), 0.0), 0.49)))
    return verdicts(t.column("account_id"), score, flagged, t.column("campaign_id"))
