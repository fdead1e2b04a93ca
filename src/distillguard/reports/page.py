"""A scan folder -> the report's view model: plain dicts and lists, nothing rendered.

Everything is sorted with a full tie-break, so the same scan folder always gives the
same page. Long lists are capped; each cap says how many rows it left out and where
the analyst finds them (the scan folder's Parquet tables are the complete record).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.reports import charts
from distillguard.reports.graph import account_graph
from distillguard.verdicts.actions import ACTIONS as TAKEN, NO_ACTION
from distillguard.verdicts.indicators import default_policy
from distillguard.verdicts.read import ScanDir, reason_text

ACTIONS = (*TAKEN, NO_ACTION)  # strongest first
MEMBER_ROWS = 50           # member accounts listed per campaign
INDICATOR_ROWS = 15        # values listed per campaign and indicator kind
REFS_PER_REASON = {"exchange": 5, "identifier": 3, "account": 5, "metric": 1}


def build_page(scan_dir: str | Path) -> dict:
    """The whole report as plain data (report.html.j2 shows it); `charts` maps each
    chart's id to its Vega-Lite spec."""
    scan = ScanDir(scan_dir)
    campaigns = sorted(scan.table("campaigns").to_pylist(),
                       key=lambda c: (-c["risk"], -c["accounts"], c["campaign_id"]))
    ids = [c["campaign_id"] for c in campaigns]
    accounts = scan.table("accounts")
    tables = {name: _rows_in(scan.table(name), "campaign_id", ids) for name in ("evidence", "indicators", "samples")}
    tables["accounts"] = _rows_in(accounts, "campaign_id", ids)
    timeline = scan.table("timeline")
    models = scan.table("models").to_pylist()
    window = charts.Window.of(pc.min(timeline.column("hour")).as_py(), pc.max(timeline.column("hour")).as_py(),
                              [m["model"] for m in models]) if timeline.num_rows else None
    # Models released inside the scanned window (one served from its first hour was there before it).
    releases = sorted(({"model": m["model"], "first_seen": m["first_seen"]} for m in models
                       if window and m["first_seen"] >= window.start + timedelta(hours=1)),
                      key=lambda m: (m["first_seen"], m["model"]))
    page_charts: dict[str, dict] = {}
    if window:
        page_charts["overview"] = charts.overview(
            timeline.filter(pc.is_null(timeline.column("campaign_id"))).to_pylist(),
            timeline.filter(pc.is_valid(timeline.column("campaign_id"))).to_pylist(), ids, releases, window)
    sections = []
    for rank, c in enumerate(campaigns, 1):
        own = {name: _where(t, "campaign_id", c["campaign_id"]) for name, t in tables.items()}
        hours = _where(timeline, "campaign_id", c["campaign_id"]).to_pylist()
        section, specs = _campaign(rank, c, own, hours, releases, window)
        sections.append(section)
        page_charts |= specs
    codes = sorted({r["code"] for s in sections for r in s["reasons"]}
                   | {a["rule"] for s in sections for a in s["actions"] if a["rule"]})
    return {
        "scan": scan.meta,
        "watch": _watch_list(accounts),
        "campaigns": sections,
        "releases": releases,
        "glossary": [{"code": code, "text": reason_text(code)} for code in codes],
        "charts": page_charts,
    }


def _campaign(rank: int, c: dict, own: dict[str, pa.Table], hours: list[dict], releases: list[dict],
              window: charts.Window | None) -> tuple[dict, dict]:
    """One campaign's section and its charts; `own` holds its rows of accounts, evidence,
    indicators and samples, `hours` its rows of the timeline."""
    cid = c["campaign_id"]
    members = own["accounts"].to_pylist()
    campaign_reasons = list(c["reasons"] or [])
    held = Counter(code for m in members for code in (m["reasons"] or []))
    pairs = {p["code"]: p["pairs"] for p in c["link_pairs"] or []}
    # The campaign's own reasons first, in its order; then what only some members show.
    order = campaign_reasons + sorted(set(held) - set(campaign_reasons), key=lambda k: (-held[k], k))
    actions = Counter((m["action"], m["action_rule"]) for m in members)
    listed = sorted(members, key=lambda m: (ACTIONS.index(m["action"]), -m["score"], m["account_id"]))[:MEMBER_ROWS]
    graph = account_graph(members, own["evidence"])
    specs = {f"{cid}-graph": charts.graph(graph)}
    if window and hours:
        specs |= {f"{cid}-timeline": charts.timeline(hours, releases, window), f"{cid}-clock": charts.clock(hours)}
    section = {
        **c,
        "rank": rank,
        "median_percentile": 1.0 - c["median_tail"],
        "reasons": [{"code": k, "text": reason_text(k), "members": held[k], "pairs": pairs.get(k),
                     "campaign": k in campaign_reasons} for k in order],
        "actions": [{"action": a, "rule": r, "text": reason_text(r) if r else "", "accounts": n}
                    for (a, r), n in sorted(actions.items(), key=lambda x: (ACTIONS.index(x[0][0]), x[0][1] or ""))],
        "members": _members(listed, own["evidence"]),
        "members_left_out": len(members) - len(listed),
        "indicators": _indicators(own["indicators"].to_pylist()),
        "samples": _samples(own["samples"].to_pylist(), order),
        "pivot": _pivot(hours, releases),
        "graph_note": graph["note"],
        "charts": {name.removeprefix(f"{cid}-"): name for name in specs},
    }
    return section, specs


def _samples(rows: list[dict], order: list[str]) -> list[dict]:
    """One row per sampled exchange with every reason it was sampled for (an exchange
    often shows several), in the campaign's reason order; then the random picks."""
    rank = {code: i for i, code in enumerate(order)}
    by_id: dict[str, dict] = {}
    for r in rows:
        row = by_id.setdefault(r["request_id"], {**r, "reasons": []})
        if r["reason"] is not None:
            row["reasons"].append(r["reason"])
    for row in by_id.values():
        row["reasons"].sort(key=lambda k: (rank.get(k, len(rank)), k))
    return sorted(by_id.values(), key=lambda s: (not s["reasons"], [rank.get(k, len(rank)) for k in s["reasons"][:1]],
                                                 -(s["intent"] or 0.0), s["request_id"]))


def _members(listed: list[dict], evidence: pa.Table) -> list[dict]:
    """Each listed member with, per reason, the first refs of the evidence behind it."""
    wanted = _rows_in(evidence, "account_id", [m["account_id"] for m in listed])
    refs: dict[tuple[str, str], dict] = {}
    for kind, k in REFS_PER_REASON.items():
        rows = wanted.filter(pc.equal(wanted.column("kind"), kind))
        # Strongest first: the exchanges with the highest intent, the most shared values, the heaviest links.
        top, counts = _top_per_group(rows, ("account_id", "reason"), "value", k)
        for row in top.to_pylist():
            entry = refs.setdefault((row["account_id"], row["reason"]),
                                    {"kind": kind, "refs": [], "total": counts[(row["account_id"], row["reason"])]})
            entry["refs"].append({"ref": row["ref"], "value": row["value"]})
    out = []
    for m in listed:
        reasons = []
        for code in m["reasons"] or []:
            e = refs.get((m["account_id"], code), {"kind": None, "refs": [], "total": 0})
            reasons.append({"code": code, **e, "left_out": e["total"] - len(e["refs"])})
        out.append({**m, "reasons": reasons})
    return out


def _indicators(rows: list[dict]) -> list[dict]:
    by_kind = defaultdict(list)
    for r in rows:
        by_kind[r["kind"]].append(r)
    out = []
    # In indicators.yaml's order, which also says what each kind is.
    about = {k.kind: k.about for k in default_policy().kinds}
    order = {kind: i for i, kind in enumerate(about)}
    for kind in sorted(by_kind, key=lambda k: (order.get(k, len(order)), k)):
        values = sorted(by_kind[kind], key=lambda r: (-r["accounts"], -(r["exchanges"] or 0), r["value"]))
        out.append({"kind": kind, "about": about.get(kind, ""), "keyed": any(r["keyed"] for r in values),
                    "rows": values[:INDICATOR_ROWS],
                    "distinct": len(values), "exclusive": sum(1 for r in values if not r["outside_accounts"]),
                    "left_out": max(0, len(values) - INDICATOR_ROWS)})
    return out


def _pivot(hours: list[dict], releases: list[dict]) -> list[dict]:
    """For each model released in the window: when the campaign first used it, and its share of the campaign."""
    total = sum(h["exchanges"] for h in hours) or 1
    out = []
    for r in releases:
        used = [h for h in hours if h["model"] == r["model"]]
        if not used:
            continue
        first = min(h["hour"] for h in used)
        out.append({"model": r["model"], "released": r["first_seen"], "first_used": first,
                    "hours_after": max(0.0, (first - r["first_seen"]).total_seconds() / 3600),
                    "share": sum(h["exchanges"] for h in used) / total})
    return out


def _watch_list(accounts: pa.Table) -> dict:
    """Accounts in no campaign whose action is not 'none' (the monitor rung): counted, not listed."""
    outside = accounts.filter(pc.and_(pc.is_null(accounts.column("campaign_id")),
                                      pc.not_equal(accounts.column("action"), "none")))
    return dict(sorted(Counter(outside.column("action_rule").to_pylist()).items()))


# -- small table helpers --------------------------------------------------------------
def _where(table: pa.Table, column: str, value: str) -> pa.Table:
    return table.filter(pc.equal(table.column(column), value))


def _rows_in(table: pa.Table, column: str, values: list[str]) -> pa.Table:
    return table.filter(pc.is_in(table.column(column), pa.array(values, pa.string())))


def _top_per_group(table: pa.Table, keys: tuple[str, ...], by: str, k: int) -> tuple[pa.Table, dict]:
    """The k rows with the highest `by` per group (ties by ref), and each group's size."""
    if table.num_rows == 0:
        return table, {}
    table = table.sort_by([(key, "ascending") for key in keys] + [(by, "descending"), ("ref", "ascending")])
    cols = [table.column(key).to_numpy(zero_copy_only=False) for key in keys]
    change = np.zeros(table.num_rows, dtype=bool)
    change[0] = True
    for col in cols:
        change[1:] |= col[1:] != col[:-1]
    starts = np.flatnonzero(change)
    sizes = np.diff(np.append(starts, table.num_rows))
    rank = np.arange(table.num_rows) - np.repeat(starts, sizes)
    counts = {tuple(col[s] for col in cols): int(n) for s, n in zip(starts, sizes)}
    return table.filter(pa.array(rank < k)), counts
