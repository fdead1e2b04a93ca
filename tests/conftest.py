"""Shared fixtures: a small hand-made world, ingested and scanned as the CLI does it.

The card cell is the campaign analysts will read about, and its operator writes
hostile text wherever it can: in its prompts, its user agent and one account's id
(some providers let customers choose their account names). Every consumer of the
verdicts (report, CSV, JSON, STIX, MISP) must carry it as inert data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from distillguard.verdicts.keyed import KEY_ENV

# The tests' indicator key: a fixed, public test value, never a production secret.
os.environ.setdefault(KEY_ENV, "distillguard-test-key-not-a-secret")

HOSTILE = ('<script>alert(1)</script>', '<img src=x onerror=alert(2)>', '=HYPERLINK("http://evil.example","x")')
HOSTILE_ACCOUNT = '=HYPERLINK("http://evil.example","cell")'
HOSTILE_AGENT = 'evil/1.0 <script>alert(3)</script> "quoted" \\ back'


@dataclass(frozen=True)
class Scanned:
    scan_dir: Path
    events: Path
    accounts: Path
    groups: dict[str, list[str]]
    hostile: tuple[str, ...] = HOSTILE
    hostile_account: str = HOSTILE_ACCOUNT
    hostile_agent: str = HOSTILE_AGENT


@pytest.fixture(scope="session")
def hand_made_world(tmp_path_factory):
    """(folder with events.parquet and accounts.parquet, groups), the cell made hostile."""
    from traffic import Traffic

    t = Traffic(seed=11)
    groups = {"people": t.ordinary_people(300), "enterprise": t.enterprise_batch(4), "cell": t.card_cell(5),
              "pool": t.load_balanced_pool(20), "reseller": t.reseller(20)}
    renamed = groups["cell"][0]
    groups["cell"][0] = HOSTILE_ACCOUNT
    for row in t.accounts:
        if row["account_id"] == renamed:
            row["account_id"] = HOSTILE_ACCOUNT
    cell = set(groups["cell"])
    for i, row in enumerate(t.events):
        if row["account_id"] == renamed:
            row["account_id"] = HOSTILE_ACCOUNT
        if row["account_id"] in cell:
            row["prompt"] += "\n" + HOSTILE[i % len(HOSTILE)]
            row["user_agent"] = HOSTILE_AGENT
    folder = tmp_path_factory.mktemp("hand-made")
    t.write(folder)
    return folder, groups


def _scan(world, out: Path, *, raw_ips: bool) -> Scanned:
    from distillguard.ingest import Workspace, ingest
    from distillguard.verdicts import scan

    folder, groups = world
    ingest(events=[str(folder / "events.parquet")], accounts=[str(folder / "accounts.parquet")],
           workspace=out / "workspace")
    ws = Workspace(out / "workspace")
    scan(ws.events_sql(), ws.accounts_sql(), out / "scan", input_fingerprint=ws.fingerprint(), raw_ips=raw_ips)
    return Scanned(out / "scan", folder / "events.parquet", folder / "accounts.parquet", groups)


@pytest.fixture(scope="session")
def scanned(hand_made_world, tmp_path_factory) -> Scanned:
    """The hand-made world scanned with the default policy (IPs as keyed hashes)."""
    return _scan(hand_made_world, tmp_path_factory.mktemp("scanned"), raw_ips=False)


@pytest.fixture(scope="session")
def scanned_raw_ips(hand_made_world, tmp_path_factory) -> Scanned:
    """The same world scanned with --raw-ips."""
    return _scan(hand_made_world, tmp_path_factory.mktemp("scanned-raw"), raw_ips=True)
