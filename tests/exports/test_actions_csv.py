"""actions.csv: the accounts to act on, safe to open in a spreadsheet."""

from __future__ import annotations

import csv

from distillguard.exports.actions_csv import COLUMNS, FORMULA_STARTS, inert_cell, write_actions_csv
from distillguard.verdicts.read import ScanDir


def test_a_cell_a_spreadsheet_would_evaluate_is_written_as_text():
    assert inert_cell('=HYPERLINK("http://evil.example","x")') == '\'=HYPERLINK("http://evil.example","x")'
    for start in FORMULA_STARTS:
        assert inert_cell(start + "1+1").startswith("'")
    assert inert_cell("acct_1") == "acct_1" and inert_cell(None) == ""


def test_every_account_to_act_on_is_listed_once_strongest_first_and_inert(scanned, tmp_path):
    out = tmp_path / "actions.csv"
    counts = write_actions_csv(scanned.scan_dir, out)
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS
    accounts = {a["account_id"]: a for a in ScanDir(scanned.scan_dir).table("accounts").to_pylist()}
    expected = {a for a, v in accounts.items() if v["action"] != "none"}
    listed = [r["account_id"][1:] if r["account_id"].startswith("'=") else r["account_id"] for r in rows]
    assert sorted(listed) == sorted(expected) and len(listed) == len(set(listed))
    assert sum(counts.values()) == len(rows)
    order = {"suspend": 0, "challenge": 1, "monitor": 2}
    assert [order[r["action"]] for r in rows] == sorted(order[r["action"]] for r in rows)
    for r in rows:
        assert not any(cell.startswith(FORMULA_STARTS) for cell in r.values()), r
        a = accounts[r["account_id"].removeprefix("'")]
        assert r["action"] == a["action"] and r["rule"] == a["action_rule"] and r["reasons"].split(";") == a["reasons"]
    hostile = [r for r in rows if "HYPERLINK" in r["account_id"]]
    assert [r["account_id"] for r in hostile] == ["'" + scanned.hostile_account] and hostile[0]["action"] == "suspend"
