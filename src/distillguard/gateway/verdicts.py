"""Publishing a scan's verdicts for the gateway, as a versioned verdict table.

A scan folder holds everything (docs/evidence.md); the gateway needs two small tables:

  accounts     account_id, action, action_rule, campaign_id, reasons: the accounts with an
               action or a campaign (every other account is `none`)
  identifiers  kind, value, campaign_id: the strong identifiers (indicators.yaml kinds)
               each flagged campaign's members share and no account outside it uses,
               as keyed hashes

A version is named `<as_of>-<scan_id>`, so that names sort in time order. A store is a
folder (`<store>/<version>/`, and `<store>/CURRENT` naming the one in force) or Redis
(`<prefix>verdicts:<version>:accounts` and `:identifiers` hashes, and
`<prefix>verdicts:current`). Either way a version is written whole before the pointer
moves to it, so a gateway reads one version or the next, never a mix.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillguard.files import atomic_text
from distillguard.verdicts.actions import NO_ACTION
from distillguard.verdicts.read import ScanDir

# Versions kept in a folder store besides the current one: a gateway that read CURRENT
# just before it moved can still open the version it names.
KEEP_VERSIONS = 3
# A Redis version outlives its replacement this long, for the same reason.
REDIS_GRACE_SECONDS = 300
CURRENT = "CURRENT"


class NoVerdicts(ValueError):
    pass


@dataclass(frozen=True)
class AccountVerdict:
    action: str
    campaign: str | None
    rule: str | None
    reasons: tuple[str, ...]

    def packed(self) -> str:
        return json.dumps([self.action, self.campaign, self.rule, list(self.reasons)], separators=(",", ":"))

    @classmethod
    def unpacked(cls, text: str | bytes) -> "AccountVerdict":
        action, campaign, rule, reasons = json.loads(text)
        return cls(action, campaign, rule, tuple(reasons))


NO_VERDICT = AccountVerdict(NO_ACTION, None, None, ())


@dataclass(frozen=True)
class VerdictTable:
    version: str
    key_id: str  # the indicator key that hashed the identifiers (verdicts/keyed.py)
    accounts: dict[str, AccountVerdict]
    identifiers: dict[str, str]  # "<kind>:<keyed value>" -> campaign_id

    def account(self, account_id: str) -> AccountVerdict:
        return self.accounts.get(account_id, NO_VERDICT)

    def linked_campaign(self, identifiers: list[str]) -> str | None:
        return next((c for c in map(self.identifiers.get, identifiers) if c is not None), None)


def verdict_tables(scan: ScanDir) -> tuple[str, pa.Table, pa.Table]:
    """A scan's version name, its accounts table and its identifiers table."""
    as_of = scan.meta["as_of"].replace("-", "").replace(":", "")[:15]
    version = f"{as_of}Z-{scan.meta['scan_id']}"
    accounts = scan.table("accounts").select(["account_id", "action", "action_rule", "campaign_id", "reasons"])
    accounts = accounts.filter(pc.or_(pc.not_equal(accounts["action"], NO_ACTION),
                                      pc.is_valid(accounts["campaign_id"])))
    indicators = scan.table("indicators")
    shared_only_inside = pc.and_(pc.equal(indicators["keyed"], True), pc.equal(indicators["outside_accounts"], 0))
    identifiers = indicators.filter(shared_only_inside).select(["kind", "value", "campaign_id"])
    return version, accounts, identifiers


def publish(scan_dir: str | Path, store: str | Path) -> str:
    """Publish a scan's verdicts into a folder store; the version's name."""
    scan = ScanDir(scan_dir)
    version, accounts, identifiers = verdict_tables(scan)
    store = Path(store)
    final = store / version
    if not final.is_dir():  # a version is immutable: publishing it again changes nothing
        staging = store / f".{version}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        pq.write_table(accounts, staging / "accounts.parquet")
        pq.write_table(identifiers, staging / "identifiers.parquet")
        (staging / "manifest.json").write_text(json.dumps(
            {"version": version, "scan_id": scan.meta["scan_id"], "as_of": scan.meta["as_of"],
             "key_id": scan.meta["key_id"], "accounts": accounts.num_rows, "identifiers": identifiers.num_rows,
             "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2) + "\n")
        staging.rename(final)
    with atomic_text(store / CURRENT) as f:
        f.write(version + "\n")
    for old in sorted(p for p in store.iterdir() if p.is_dir() and not p.name.startswith("."))[:-KEEP_VERSIONS - 1]:
        if old.name != version:
            shutil.rmtree(old, ignore_errors=True)
    return version


def current_version(store: str | Path) -> str | None:
    try:
        return (Path(store) / CURRENT).read_text().strip() or None
    except FileNotFoundError:
        return None


def load(store: str | Path, version: str | None = None, *, link_kinds: tuple[str, ...] = ()) -> VerdictTable:
    """A version of a folder store (the current one by default), with the identifiers of
    the kinds that link online (policy.yaml link_identifiers)."""
    version = version or current_version(store)
    if version is None:
        raise NoVerdicts(f"{store}: no verdicts published yet (distillguard publish SCAN --to {store})")
    folder = Path(store) / version
    manifest = json.loads((folder / "manifest.json").read_text())
    accounts = pq.read_table(folder / "accounts.parquet").to_pydict()
    table = {a: AccountVerdict(act, c, r, tuple(rs or ())) for a, act, r, c, rs in zip(
        accounts["account_id"], accounts["action"], accounts["action_rule"], accounts["campaign_id"],
        accounts["reasons"])}
    ids = pq.read_table(folder / "identifiers.parquet").to_pydict()
    identifiers = {f"{k}:{v}": c for k, v, c in zip(ids["kind"], ids["value"], ids["campaign_id"]) if k in link_kinds}
    return VerdictTable(version=version, key_id=manifest["key_id"], accounts=table, identifiers=identifiers)


def publish_redis(scan_dir: str | Path, client, prefix: str) -> str:
    """Publish a scan's verdicts into Redis (gateway/state.py reads them); the version's name."""
    scan = ScanDir(scan_dir)
    version, accounts, identifiers = verdict_tables(scan)
    base = f"{prefix}verdicts:{version}"
    a = accounts.to_pydict()
    packed = {acc: AccountVerdict(act, c, r, tuple(rs or ())).packed() for acc, act, r, c, rs in zip(
        a["account_id"], a["action"], a["action_rule"], a["campaign_id"], a["reasons"])}
    ids = identifiers.to_pydict()
    linked = {f"{k}:{v}": c for k, v, c in zip(ids["kind"], ids["value"], ids["campaign_id"])}
    previous = client.get(f"{prefix}verdicts:current")
    pipe = client.pipeline(transaction=True)
    for name, mapping in ((f"{base}:accounts", packed), (f"{base}:identifiers", linked)):
        pipe.delete(name)
        items = list(mapping.items())
        for i in range(0, len(items), 10_000):
            pipe.hset(name, mapping=dict(items[i:i + 10_000]))
        if not mapping:  # an empty hash does not exist in Redis: a marker keeps the version readable
            pipe.hset(name, "", "")
    pipe.set(f"{base}:key_id", scan.meta["key_id"])
    pipe.set(f"{prefix}verdicts:current", version)
    pipe.execute()
    if previous is not None and previous.decode() != version:
        for suffix in (":accounts", ":identifiers", ":key_id"):
            client.expire(f"{prefix}verdicts:{previous.decode()}{suffix}", REDIS_GRACE_SECONDS)
    return version
