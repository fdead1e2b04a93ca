"""scan(): events and accounts -> verdicts, every stage a step from tables to a table.

  signals    per exchange: intent scores, template keys, parameter and time-zone signals
  profiles   per account: shares, rates and timings
  linking    per account pair: weighted evidence of one operator; then communities
  scoring    per account: the scorecard; per community: a calibrated p-value
  verdicts   accounts (with their actions), campaigns, evidence; then what acting on and
             sharing a campaign needs: indicators (customer identifiers as keyed hashes),
             timeline, models, samples; scan.json, the audit record

The same input, configuration and key give byte-identical outputs (docs/evidence.md).

All heavy work runs in the engine on a scratch database under the output folder,
which spills to disk beyond its memory limit; Python only handles per-community
arrays (calibration) and the graph (networkit). Outputs are written to temporary
names and renamed into place, so a failed scan leaves the previous one intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from distillguard import __version__
from distillguard.engine import Engine, exact_sum, literal
from distillguard.linking.communities import find_communities_in_layers
from distillguard.linking.edges import build_edges
from distillguard.linking.rules import PHRASING, default_rules
from distillguard.profiles import build_profiles
from distillguard.scoring.calibrate import ALPHA, MIN_EFFECT, calibrate
from distillguard.scoring.scorecard import build_account_scores, default_scorecard
from distillguard.signals.request import SAMPLE_KEY_ENV, build_signals
from distillguard.verdicts.actions import build_actions, default_ladder
from distillguard.verdicts.evidence import build_evidence
from distillguard.verdicts.indicators import (build_indicators, build_samples, build_timeline, default_policy,
                                              key_identifiers)
from distillguard.verdicts.keyed import indicator_key, key_id
from distillguard.verdicts.tables import build_verdict_tables

ProgressFn = Callable[[str, int, int], None]
# The engine's memory when the caller sets none. Every large step is split into
# parts of bounded size (engine.parts_for), so a scan of any size fits in this
# buffer pool, spilling to the scratch folder; with Python's own share the process
# stays under 4 GiB (docs/benchmarks.md).
DEFAULT_MEMORY_LIMIT = "2.5GB"
STEPS = ("signals", "profiles", "linking", "communities", "scoring", "evidence", "indicators", "writing")
# Each output in a total order, so that a re-run writes the same bytes.
OUTPUTS = {
    "accounts": "account_id",
    "campaigns": "campaign_id",
    "evidence": "campaign_id, account_id, reason, kind, ref, value",
    "indicators": "campaign_id, kind, accounts DESC, value",
    "timeline": "campaign_id NULLS FIRST, hour, model",
    "models": "model",
    "samples": "campaign_id, reason NULLS LAST, intent DESC NULLS LAST, request_id, account_id",
}
# Outputs that carry the scan's id on every row: a verdict names the scan that reached it.
STAMPED = ("accounts", "campaigns")


@dataclass
class ScanSummary:
    """scan.json, the audit record of a scan (with `seconds` kept apart, in timings.json)."""

    version: str
    scan_id: str  # names this version + configuration + input + cut + key
    until: str | None
    as_of: str  # the scan's moment: `until`, or the last exchange's time
    input_fingerprint: str
    config_hash: str
    key_id: str  # which indicator key hashed the customer identifiers (verdicts/keyed.py)
    raw_ips: bool
    exchanges: int
    content_reads: int  # exchanges whose text was read (the content sample, signals/request.py)
    accounts: int
    unknown_accounts: int
    campaigns: int
    flagged_accounts: int
    reference_accounts: int
    alpha: float
    min_effect: float
    outputs: dict[str, str] = field(default_factory=dict)  # file -> sha256 of its bytes
    seconds: dict[str, float] = field(default_factory=dict)

    def audit_record(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "seconds"}


# The reviewed files a verdict depends on.
CONFIG_FILES = (("distillguard.signals", "intents.yaml"), ("distillguard.linking", "links.yaml"),
                ("distillguard.scoring", "scorecard.yaml"), ("distillguard.verdicts", "actions.yaml"),
                ("distillguard.verdicts", "indicators.yaml"))


def config_hash(*, raw_ips: bool = False) -> str:
    """A fingerprint of the detection knowledge and settings a verdict was reached with.

    The content-sample key changes which texts are read, so it counts too (by its id:
    the key itself is a secret)."""
    from importlib import resources

    h = hashlib.sha256()
    for package, name in CONFIG_FILES:
        h.update(resources.files(package).joinpath(name).read_bytes())
    sample_key = os.environ.get(SAMPLE_KEY_ENV, "")
    h.update(f"alpha={ALPHA};min_effect={MIN_EFFECT};raw_ips={raw_ips};"
             f"sample_key={key_id(sample_key.encode()) if sample_key else ''}".encode())
    return h.hexdigest()[:16]


def scan(
    events_sql: str,
    accounts_sql: str,
    out: str | Path,
    *,
    input_fingerprint: str,
    reasoning_sql: str | None = None,
    decisions_sql: str | None = None,
    until: str | None = None,
    raw_ips: bool = False,
    progress: ProgressFn | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> ScanSummary:
    """Scan the events (relation SQL) with their accounts and write the verdicts into `out`.

    input_fingerprint names the input in the audit record (Workspace.fingerprint());
    reasoning_sql gives the reasoning blobs of the exchanges (Workspace.reasoning_sql(),
    from provider logs), which link accounts that carry on one conversation;
    decisions_sql gives the gateway's decisions (Workspace.decisions_sql()), so that each
    verdict says how many of the account's requests the gateway refused;
    raw_ips lets IP addresses out as they are instead of as keyed hashes (indicators.yaml).
    The indicator key comes from the environment (verdicts/keyed.py); without one the scan
    refuses to start."""
    key = indicator_key()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = out / ".scan"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    report = progress or (lambda step, done, total: None)
    timings: dict[str, float] = {}
    until_sql = f"TIMESTAMPTZ {literal(until)}" if until else None
    rules, terms, ladder, policy = default_rules(), default_scorecard(), default_ladder(), default_policy()
    try:
        with Engine.open(scratch / "scan.duckdb", memory_limit=memory_limit or DEFAULT_MEMORY_LIMIT, threads=threads,
                         temp_directory=scratch / "spill") as engine:
            def step(name: str, fn: Callable[[], object]) -> object:
                report(name, STEPS.index(name), len(STEPS))
                t0 = time.perf_counter()
                result = fn()
                timings[name] = round(time.perf_counter() - t0, 3)
                return result

            step("signals", lambda: build_signals(engine, events_sql, accounts_sql, until=until_sql))
            step("profiles", lambda: build_profiles(engine, accounts_sql))
            step("linking", lambda: (_window_view(engine, "scan_reasoning", reasoning_sql, "blob", until_sql),
                                     build_edges(engine, accounts_sql, rules)))
            step("communities", lambda: _communities(engine, rules.min_weight))
            calibration = step("scoring", lambda: _score(engine, terms))
            step("evidence", lambda: (_window_view(engine, "scan_decisions", decisions_sql, "decision", until_sql),
                                      build_verdict_tables(engine, calibration, terms, rules),
                                      build_actions(engine, ladder),
                                      build_evidence(engine, accounts_sql, terms, rules)))
            step("indicators", lambda: (build_indicators(engine, accounts_sql, policy),
                                        key_identifiers(engine, policy, key, raw_ips=raw_ips),
                                        build_timeline(engine), build_samples(engine)))
            config = config_hash(raw_ips=raw_ips)
            as_of = until or engine.rows("SELECT max(ts) FROM signals")[0][0].isoformat()
            identity = json.dumps([__version__, config, input_fingerprint, until, raw_ips, key_id(key)])
            summary = ScanSummary(
                version=__version__, scan_id=hashlib.sha256(identity.encode()).hexdigest()[:16], until=until,
                as_of=as_of, input_fingerprint=input_fingerprint, config_hash=config, key_id=key_id(key),
                raw_ips=raw_ips, exchanges=_one(engine, "SELECT count(*) FROM signals"),
                content_reads=_one(engine, "SELECT count(*) FROM signals WHERE content_read"),
                accounts=_one(engine, "SELECT count(*) FROM profiles"),
                unknown_accounts=_one(engine, "SELECT count(*) FROM profiles WHERE unknown_account"),
                campaigns=len(calibration.flagged),
                flagged_accounts=_one(engine, "SELECT count(*) FROM verdict_accounts WHERE flagged"),
                reference_accounts=calibration.reference_size, alpha=ALPHA, min_effect=MIN_EFFECT,
                seconds=timings)
            step("writing", lambda: _write(engine, out, summary))
        report("writing", len(STEPS), len(STEPS))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return summary


def _window_view(engine: Engine, name: str, relation: str | None, column: str, until_sql: str | None) -> None:
    """`name`: (account_id, column) of an optional side input's rows in the scan's window
    (empty when the workspace has none)."""
    if relation is None:
        sql = f"SELECT NULL::VARCHAR AS account_id, NULL::VARCHAR AS {column} WHERE FALSE"
    else:
        sql = f"SELECT account_id, {column} FROM ({relation})" + (f" WHERE ts <= {until_sql}" if until_sql else "")
    engine.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}", step=f"window: {name}")


def _one(engine: Engine, sql: str) -> int:
    return int(engine.rows(sql)[0][0])


def _communities(engine: Engine, min_weight: float) -> None:
    # Wording links go in a second layer (linking/communities.py says why).
    pairs = (f"SELECT src, dst, {exact_sum('weight')} AS weight FROM link_edges "
             f"WHERE kind {{}} {literal(PHRASING)} GROUP BY src, dst")
    found = find_communities_in_layers(engine.arrow(pairs.format("<>"), step="linking: pair weights"),
                                       engine.arrow(pairs.format("="), step="linking: wording pairs"),
                                       min_weight=min_weight)
    engine.register("communities_found", found)
    engine.execute("CREATE OR REPLACE TABLE communities AS SELECT * FROM communities_found", step="communities")
    engine.unregister("communities_found")


def _score(engine: Engine, terms):
    build_account_scores(engine, terms)
    table = engine.arrow("""
SELECT s.account_id, s.score, c.community_id FROM account_scores s
LEFT JOIN communities c USING (account_id) ORDER BY s.account_id""", step="scoring: load")
    scores = table.column("score").to_numpy(zero_copy_only=False).astype(float)
    community = np.array(table.column("community_id").to_pylist(), dtype=object)
    calibration = calibrate(scores, community)
    engine.register("calibrated_accounts", pa.table({
        "account_id": table.column("account_id"),
        "own_tail": pa.array(calibration.account_q),
    }))
    engine.execute("CREATE OR REPLACE TABLE account_calibration AS SELECT * FROM calibrated_accounts",
                   step="scoring: accounts")
    engine.unregister("calibrated_accounts")
    names = sorted(calibration.community_p)
    engine.register("calibrated_communities", pa.table({
        "community_id": pa.array(names, pa.string()),
        "p_value": pa.array([calibration.community_p[n] for n in names], pa.float64()),
        "median_tail": pa.array([calibration.community_q[n] for n in names], pa.float64()),
        "flagged": pa.array([n in calibration.flagged for n in names], pa.bool_()),
    }))
    engine.execute("CREATE OR REPLACE TABLE community_calibration AS SELECT * FROM calibrated_communities",
                   step="scoring: communities")
    engine.unregister("calibrated_communities")
    return calibration


def _write(engine: Engine, out: Path, summary: ScanSummary) -> None:
    staged = []
    for name, order in OUTPUTS.items():
        tmp = out / f".{name}.parquet.tmp"
        stamp = f", {literal(summary.scan_id)} AS scan_id" if name in STAMPED else ""
        engine.copy_to_parquet(f"SELECT *{stamp} FROM verdict_{name} ORDER BY {order}", tmp, step=f"write {name}")
        summary.outputs[f"{name}.parquet"] = _sha256(tmp)
        staged.append((tmp, out / f"{name}.parquet"))
    for name, record in (("scan.json", summary.audit_record()), ("timings.json", summary.seconds)):
        tmp = out / f".{name}.tmp"
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        staged.append((tmp, out / name))
    for tmp, final in staged:
        os.replace(tmp, final)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    return "sha256:" + h.hexdigest()
