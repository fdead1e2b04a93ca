"""A scan folder -> actions.csv: the accounts to act on, one row each, strongest action first.

    account_id, campaign_id, action, rule, risk, reasons, evidence_rows, scan_id

Spreadsheets run a cell that starts with = + - @ (or a tab or carriage return) as a
formula, and account ids can be chosen by the customer: such a cell is written with a
leading apostrophe, so it opens as the text it is (OWASP's advice for CSV injection).
"""

from __future__ import annotations

import csv
from pathlib import Path

from distillguard.engine import Engine
from distillguard.files import atomic_text
from distillguard.verdicts.actions import ACTIONS
from distillguard.verdicts.read import ScanDir

COLUMNS = ("account_id", "campaign_id", "action", "rule", "risk", "reasons", "evidence_rows", "scan_id")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text, never evaluates."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write_actions_csv(scan_dir: str | Path, out: str | Path) -> dict[str, int]:
    """Write actions.csv (atomically); returns the number of accounts per action."""
    scan = ScanDir(scan_dir)
    severity = " ".join(f"WHEN '{a}' THEN {i}" for i, a in enumerate(ACTIONS))
    sql = f"""
SELECT a.account_id, a.campaign_id, a.action, a.action_rule, a.risk, array_to_string(a.reasons, ';'),
  coalesce(e.n, 0), a.scan_id
FROM {scan.sql("accounts")} a
LEFT JOIN (SELECT account_id, count(*) AS n FROM {scan.sql("evidence")} GROUP BY 1) e USING (account_id)
WHERE a.action <> 'none'
ORDER BY CASE a.action {severity} END, a.risk DESC, a.account_id"""
    counts = {a: 0 for a in ACTIONS}
    with Engine.open() as engine, atomic_text(out, newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(COLUMNS)
        for row in engine.rows(sql, step="actions.csv"):
            account, campaign, action, rule, risk, reasons, evidence, scan_id = row
            writer.writerow([inert_cell(account), inert_cell(campaign), action, rule, f"{risk:.6f}",
                             inert_cell(reasons), evidence, scan_id])
            counts[action] += 1
    return counts
