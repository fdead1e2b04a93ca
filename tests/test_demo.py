"""End to end: the README's main command, as a user runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from distillguard.simulate.redelivery import DAMAGE


def _cli() -> list[str]:
    exe = shutil.which("distillguard", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "distillguard.cli"]


def _table_row(text: str, first_cell: str) -> list[str]:
    """Cells of the first Rich table row whose first cell is `first_cell`."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃").split("│")]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no table row {first_cell!r} in output")


def _ints(cells: list[str]) -> list[int]:
    return [int(c.replace(",", "")) for c in cells]


def _number(text: str, label: str) -> int:
    m = re.search(rf"{label}\D*([\d,]+)", text)
    assert m, f"no {label!r} in output"
    return int(m.group(1).replace(",", ""))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    run = subprocess.run(_cli() + ["demo", "--preset", "small", "--seed", "0", "--workdir", str(work)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return work, run.stdout


def test_demo_ingests_the_whole_world_and_quarantines_only_the_damaged_lines(demo):
    work, out = demo
    world = json.loads((work / "world" / "world.json").read_text())
    # events: files, rows read, ingested, duplicates, quarantined
    events = _ints(_table_row(out, "events")[1:6])
    damaged = 20  # 1% of the 2,000 re-delivered lines, 4 of each kind of damage
    assert events == [2, world["totals"]["exchanges"] + 2_000, world["totals"]["exchanges"], 2_000 - damaged, damaged]
    accounts = _ints(_table_row(out, "accounts")[1:6])
    assert accounts[2] == accounts[1] and accounts[4] == 0
    reasons = {cells[1]: int(cells[2]) for cells in
               ([c.strip() for c in line.strip().strip("│").split("│")] for line in out.splitlines())
               if len(cells) == 3 and cells[0] == "events" and cells[2].isdigit()}
    # Each kind of damage earns its own reason, four lines each.
    assert sorted(reasons.values()) == [damaged // len(DAMAGE)] * len(DAMAGE), reasons


def test_demo_counts_accounts_seen_only_in_events(demo):
    work, out = demo
    assert _number(out, "without an accounts row") > 0


def test_demo_rerun_changes_nothing(demo, tmp_path):
    work, first = demo
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    world = work / "world"
    again = subprocess.run(_cli() + ["ingest", "--events", str(world / "events.parquet"),
                                     "--events", str(work / "redelivered"),
                                     "--accounts", str(world / "accounts.parquet"),
                                     "--workspace", str(work / "workspace"), "--memory-limit", "1GB", "--threads", "1"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    totals = lambda text: re.search(r"workspace now holds (.*)", text).group(1)
    assert totals(again.stdout) == totals(first)
    assert _ints(_table_row(again.stdout, "events")[1:4])[2] == 0  # nothing new ingested
    assert "events: 2 file(s) skipped, already ingested" in again.stdout


def test_a_bad_preset_is_a_clear_error_not_a_traceback(tmp_path):
    run = subprocess.run(_cli() + ["simulate", "--preset", "huge", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "unknown preset 'huge'" in run.stderr and "Traceback" not in run.stderr


def test_an_unusable_memory_limit_is_a_clear_error(tmp_path):
    events = tmp_path / "e.jsonl"
    events.write_text("")
    run = subprocess.run(_cli() + ["ingest", "--events", str(events), "--workspace", str(tmp_path / "ws"),
                                   "--memory-limit", "lots"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "Memory must have a number" in run.stderr and "Traceback" not in run.stderr


def test_demo_scans_and_compares_with_the_truth(demo):
    work, out = demo
    world = json.loads((work / "world" / "world.json").read_text())
    import pyarrow.parquet as pq

    campaigns = pq.read_table(work / "scan" / "campaigns.parquet")
    assert campaigns.num_rows >= 3
    # The truth table names every true campaign with its recall.
    for name in world["campaigns"]:
        assert _table_row(out, name)
    assert re.search(r"account precision 1\.0000", out), "the small world's flags are all campaign accounts"


def test_scan_from_files_with_until_and_a_bad_until(demo, tmp_path):
    work, _ = demo
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    world = work / "world"
    run = subprocess.run(_cli() + ["scan", "--events", str(world / "events.parquet"),
                                   "--accounts", str(world / "accounts.parquet"), "--out", str(tmp_path / "scan"),
                                   "--until", "2026-03-04T00:00:00Z", "--labels", str(world / "labels.parquet")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "up to 2026-03-04T00:00:00+00:00" in run.stdout and "against the truth" in run.stdout
    meta = json.loads((tmp_path / "scan" / "scan.json").read_text())
    assert meta["until"] == "2026-03-04T00:00:00+00:00" and meta["exchanges"] < world_exchanges(world)
    bad = subprocess.run(_cli() + ["scan", "--workspace", str(work / "workspace"), "--out", str(tmp_path / "x"),
                                   "--until", "yesterday"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "RFC 3339" in bad.stderr and "Traceback" not in bad.stderr


def world_exchanges(world: Path) -> int:
    return json.loads((world / "world.json").read_text())["totals"]["exchanges"]
