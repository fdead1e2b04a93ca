"""A hand-written scan folder holding every form a shared value can take.

The hand-made world's scan shares few kinds (its IPs are each one account's), so the
exports' handling of raw IPv4/IPv6 addresses, AS numbers, TLS fingerprints and hostile
user agents is tested on this folder, written in the scan's format (scan-outputs).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.verdicts.keyed import keyed_hash
from distillguard.verdicts.scan import OUTPUTS

KEY = b"scan-folder-test-key-not-a-secret"
T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
T1 = datetime(2026, 3, 8, 12, tzinfo=timezone.utc)
AS_OF = "2026-03-09T00:00:00+00:00"
# An operator's user agent written to break every quoting layer between here and a pattern matcher.
AGENT = "harvest/2.0 'single' \"double\" back\\slash ]) OR [x:y = 'z'] \n\t<script>alert(1)</script> \u202eusé"
JA3 = "e7d705a3286e19ea42f587b344ee6865"
JA4 = "t13d1516h2_8daaf6152771_e5627efa2ab1"
CARD = "card-fingerprint-1"

TS = pa.timestamp("us", tz="UTC")
INDICATORS = pa.schema([("campaign_id", pa.string()), ("kind", pa.string()), ("value", pa.string()),
                        ("keyed", pa.bool_()), ("accounts", pa.int64()), ("exchanges", pa.int64()),
                        ("outside_accounts", pa.int64()), ("first_seen", TS), ("last_seen", TS)])
CAMPAIGNS = pa.schema([("campaign_id", pa.string()), ("accounts", pa.int64()), ("exchanges", pa.int64()),
                       ("risk", pa.float64()), ("first_seen", TS), ("last_seen", TS),
                       ("reasons", pa.list_(pa.string())), ("p_value", pa.float64()),
                       ("median_score", pa.float64()), ("median_tail", pa.float64()),
                       ("link_pairs", pa.list_(pa.struct([("code", pa.string()), ("pairs", pa.int64())]))),
                       ("community_id", pa.string()), ("scan_id", pa.string())])


def indicator(campaign: str, kind: str, value: str, *, keyed: bool = False, accounts: int = 3,
              outside: int = 0, events: bool = True) -> dict:
    return {"campaign_id": campaign, "kind": kind, "value": value, "keyed": keyed, "accounts": accounts,
            "exchanges": 40 * accounts if events else None, "outside_accounts": outside,
            "first_seen": T0 if events else None, "last_seen": T1 if events else None}


def write_scan(folder: Path, *, raw_ips: bool = True, rows: list[dict] | None = None) -> Path:
    """Two campaigns: 'campaign-forms' with one value of every form, 'campaign-bare' with none."""
    folder.mkdir(parents=True, exist_ok=True)
    c = "campaign-forms"
    ip = (lambda v: v) if raw_ips else (lambda v: keyed_hash("ip", v, KEY))
    if rows is None:
        rows = [
            indicator(c, "client_ip", ip("203.0.113.7"), keyed=not raw_ips),
            indicator(c, "client_ip", ip("2001:DB8::7"), keyed=not raw_ips),
            indicator(c, "signup_ip", ip("198.51.100.9"), keyed=not raw_ips, events=False),
            indicator(c, "asn", "64500"),
            indicator(c, "user_agent", AGENT),
            indicator(c, "tls", JA3),
            indicator(c, "tls", JA4),
            indicator(c, "tls", "some-other-fingerprint"),
            indicator(c, "payment", keyed_hash("payment", CARD, KEY), keyed=True, events=False),
            indicator(c, "email_domain", "catchall.example", events=False),       # kind not shared
            indicator(c, "client_ip", ip("192.0.2.1"), keyed=not raw_ips, outside=4),  # others use it
            indicator(c, "client_ip", ip("192.0.2.2"), keyed=not raw_ips, accounts=1),  # one member's
        ]
    tables = {
        "campaigns": pa.Table.from_pylist([
            {"campaign_id": name, "accounts": 6, "exchanges": 480, "risk": 0.97, "first_seen": T0, "last_seen": T1,
             "reasons": ["content.reasoning_elicitation", "link.payment"], "p_value": 1e-9, "median_score": 5.0,
             "median_tail": 0.9, "link_pairs": [{"code": "link.payment", "pairs": 15}], "community_id": name,
             "scan_id": "0123456789abcdef"} for name in ("campaign-bare", c)], CAMPAIGNS),
        "indicators": pa.Table.from_pylist(rows, INDICATORS),
    }
    for name in OUTPUTS:
        pq.write_table(tables.get(name, pa.table({"campaign_id": pa.array([], pa.string())})),
                       folder / f"{name}.parquet")
    (folder / "scan.json").write_text(json.dumps({
        "version": "test", "scan_id": "0123456789abcdef", "until": None, "key_id": "00112233aabbccdd",
        "raw_ips": raw_ips, "campaigns": 2, "as_of": AS_OF, "outputs": {}}))
    return folder


def strings(node):
    """Every key and string value in a JSON document, decoded."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)
    elif isinstance(node, str):
        yield node


def customer_values(scanned, *, ips: bool) -> set[str]:
    """What of the customers the exports must never carry: account and request ids, prompts,
    e-mail/card/phone values, and (unless the scan ran with raw IPs) their IP addresses."""
    events = pq.read_table(scanned.events).to_pylist()
    accounts = pq.read_table(scanned.accounts).to_pylist()
    values = {a["account_id"] for a in accounts} | {e["request_id"] for e in events} | {e["prompt"] for e in events}
    values |= {e["conversation_id"] for e in events if e.get("conversation_id")}
    values |= {a[c] for a in accounts for c in ("email_hash", "payment_fingerprint", "phone_hash") if a.get(c)}
    if ips:
        values |= {e["client_ip"] for e in events if e.get("client_ip")}
        values |= {a["signup_ip"] for a in accounts if a.get("signup_ip")}
    return values | set(scanned.hostile)  # the hostile strings the cell wrote into its prompts only
