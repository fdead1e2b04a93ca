"""The sharing policy (sharing.yaml) and what of a scan folder it lets out.

Both exports (stix.py, misp.py) take their campaigns and values from `shared_scan`, so the
two files always carry the same campaigns and the same values, chosen by one rule.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

import yaml

from distillguard.files import atomic_text
from distillguard.verdicts.indicators import IndicatorKind, default_policy
from distillguard.verdicts.keyed import PREFIX
from distillguard.verdicts.read import ScanDir

STIX_FORMS = ("ip", "autonomous-system", "user-agent", "identifier")
KEYED_RE = re.compile(re.escape(PREFIX) + r"[0-9a-f]{64}")


class UnsafeValue(ValueError):
    """A value that must leave a scan only as a keyed hash is in the clear."""


@dataclass(frozen=True)
class Format:
    name: str
    pattern: re.Pattern
    misp_type: str


@dataclass(frozen=True)
class KindPolicy:
    kind: str
    share: bool
    why: str
    indicator: IndicatorKind  # what the scan says of the kind (indicators.yaml)
    stix: str | None = None
    misp_type: str | None = None
    misp_category: str | None = None
    to_ids: bool = False
    valid_days: int = 30
    indicator_types: tuple[str, ...] = ()
    formats: tuple[Format, ...] = ()

    @property
    def about(self) -> str:
        return self.indicator.about

    @property
    def namespace(self) -> str | None:
        """The keyed hash's namespace; None for a kind never keyed."""
        return self.indicator.namespace

    @property
    def clear_allowed(self) -> bool:
        """False: the kind's values leave a scan only as keyed hashes, whatever the scan."""
        return self.indicator.keyed != "always"

    def format_of(self, value: str) -> Format | None:
        return next((f for f in self.formats if f.pattern.fullmatch(value)), None)


@dataclass(frozen=True)
class SharingPolicy:
    tlp: str
    tlp_levels: dict[str, dict[str, str]]
    max_outside_accounts: int
    min_accounts: int
    technique: dict
    campaign_objective: str
    ids: dict
    extension: dict
    keyed: dict
    misp: dict
    kinds: dict[str, KindPolicy]

    @property
    def namespace(self) -> uuid.UUID:
        return uuid.UUID(self.ids["namespace"])

    def uuid_for(self, *parts: object) -> str:
        """A stable uuid5 from the parts of a name: the same export gets the same ids."""
        return str(uuid.uuid5(self.namespace, "|".join(str(p) for p in parts)))

    def tlp_level(self, tlp: str | None) -> str:
        level = (tlp or self.tlp).lower().removeprefix("tlp:")
        if level not in self.tlp_levels:
            raise ValueError(f"unknown TLP level {tlp!r}; one of {sorted(self.tlp_levels)}")
        return level


def load_policy() -> SharingPolicy:
    raw = yaml.safe_load(resources.files("distillguard.exports").joinpath("sharing.yaml").read_text())
    indicator_kinds = {k.kind: k for k in default_policy().kinds}
    if set(raw["kinds"]) != set(indicator_kinds):
        raise ValueError(f"sharing.yaml: kinds {sorted(raw['kinds'])} differ from indicators.yaml's "
                         f"{sorted(indicator_kinds)}")
    kinds = {}
    for name, spec in raw["kinds"].items():
        spec = dict(spec)
        ik = indicator_kinds[name]
        formats = tuple(Format(f["name"], re.compile(f["pattern"]), f["misp_type"]) for f in spec.pop("formats", ()))
        kp = KindPolicy(kind=name, indicator=ik, indicator_types=tuple(spec.pop("indicator_types", ())), formats=formats, **spec)
        if kp.share and kp.clear_allowed and (kp.stix not in STIX_FORMS or not kp.misp_type):
            raise ValueError(f"sharing.yaml: {name} is shared in the clear and needs stix (one of {STIX_FORMS}) "
                             "and misp_type")
        if not kp.clear_allowed and kp.stix:
            raise ValueError(f"sharing.yaml: {name} exists only as keyed hashes and must not have a clear form")
        if kp.share and not (kp.misp_category and kp.indicator_types):
            raise ValueError(f"sharing.yaml: {name} is shared and needs misp_category and indicator_types")
        kinds[name] = kp
    policy = SharingPolicy(
        tlp=raw["tlp"], tlp_levels=raw["tlp_levels"], max_outside_accounts=int(raw["max_outside_accounts"]),
        min_accounts=int(raw["min_accounts"]), technique=raw["technique"],
        campaign_objective=" ".join(raw["campaign_objective"].split()), ids=raw["ids"],
        extension=raw["extension"], keyed=raw["keyed"], misp=raw["misp"], kinds=kinds)
    policy.tlp_level(None)  # the default must be a known level
    if {v["stix"] for v in policy.tlp_levels.values()} - {"white", "green", "amber", "red"}:
        raise ValueError("sharing.yaml: tlp_levels: stix is one of white, green, amber, red (STIX 2.1's TLP markings)")
    return policy


# -- the scan folder ------------------------------------------------------------------------

@dataclass(frozen=True)
class SharedValue:
    campaign_id: str
    kind: str
    value: str  # as the scan wrote it (keyed: hmac-sha256:<hex>)
    keyed: bool
    accounts: int
    outside_accounts: int
    exchanges: int | None
    first_seen: datetime | None
    last_seen: datetime | None
    policy: KindPolicy

    def usage(self, campaign_accounts: int) -> str:
        """Who used it, in words: "used by 3 of the campaign's 5 accounts in 40 exchanges, ..."."""
        text = f"used by {self.accounts:,} of the campaign's {campaign_accounts:,} accounts"
        if self.exchanges is not None:
            text += f" in {self.exchanges:,} exchanges"
        outside = self.outside_accounts
        return text + (", by no other account" if not outside else f", and by {outside:,} other accounts")

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        return ipaddress.ip_address(self.value) if self.policy.stix == "ip" and not self.keyed else None


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    accounts: int
    exchanges: int
    risk: float
    p_value: float
    first_seen: datetime
    last_seen: datetime
    reasons: tuple[str, ...]
    values: tuple[SharedValue, ...]


@dataclass(frozen=True)
class SharedScan:
    """What an export may carry from one scan folder."""

    scan_id: str
    key_id: str
    raw_ips: bool
    as_of: datetime
    campaigns: tuple[Campaign, ...]
    withheld: dict[str, int]  # why values were not shared -> how many


def _utc(ts) -> datetime | None:
    if ts is None:
        return None
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return (ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def shared_scan(scan_dir: Path, policy: SharingPolicy) -> SharedScan:
    scan = ScanDir(Path(scan_dir))
    meta = scan.meta
    raw_ips = bool(meta["raw_ips"])
    withheld: dict[str, int] = {}
    by_campaign: dict[str, list[SharedValue]] = {}
    for row in scan.table("indicators").to_pylist():
        kp = policy.kinds.get(row["kind"])
        if kp is None:
            raise ValueError(f"indicators.parquet: kind {row['kind']!r} is not in sharing.yaml")
        value, keyed = row["value"], bool(row["keyed"])
        # Defence in depth: the scan keys these values, but an export is the last door.
        if kp.indicator.is_keyed(raw_ips) and not keyed:
            raise UnsafeValue(f"indicators.parquet: a {row['kind']} value of campaign {row['campaign_id']} is in "
                              "the clear; it may leave a scan only as a keyed hash (verdicts/indicators.yaml)")
        if keyed and not KEYED_RE.fullmatch(value):
            raise ValueError(f"indicators.parquet: keyed {row['kind']} value is not {PREFIX}<64 hex>: {value[:80]!r}")
        reason = None
        if not kp.share:
            reason = f"kind {row['kind']} not shared"
        elif (row["outside_accounts"] or 0) > policy.max_outside_accounts:
            reason = "used outside the campaign"
        elif row["accounts"] < policy.min_accounts:
            reason = f"used by fewer than {policy.min_accounts} members"
        elif not keyed and kp.stix == "ip":
            try:
                ipaddress.ip_address(value)
            except ValueError:
                reason = "not an IP address"
        elif not keyed and kp.stix == "autonomous-system" and not value.isdigit():
            reason = "not an AS number"
        if reason:
            withheld[reason] = withheld.get(reason, 0) + 1
            continue
        by_campaign.setdefault(row["campaign_id"], []).append(SharedValue(
            campaign_id=row["campaign_id"], kind=row["kind"], value=value, keyed=keyed,
            accounts=int(row["accounts"]), outside_accounts=int(row["outside_accounts"] or 0),
            exchanges=row["exchanges"], first_seen=_utc(row["first_seen"]),
            last_seen=_utc(row["last_seen"]), policy=kp))
    kind_order = {k: i for i, k in enumerate(policy.kinds)}
    campaigns = []
    for row in sorted(scan.table("campaigns").to_pylist(), key=lambda r: r["campaign_id"]):
        values = sorted(by_campaign.pop(row["campaign_id"], []),
                        key=lambda v: (kind_order[v.kind], -v.accounts, v.value))
        campaigns.append(Campaign(
            campaign_id=row["campaign_id"], accounts=int(row["accounts"]), exchanges=int(row["exchanges"]),
            risk=float(row["risk"]), p_value=float(row["p_value"]), first_seen=_utc(row["first_seen"]),
            last_seen=_utc(row["last_seen"]), reasons=tuple(row["reasons"] or ()), values=tuple(values)))
    if by_campaign:
        raise ValueError(f"indicators.parquet names campaigns missing from campaigns.parquet: {sorted(by_campaign)}")
    return SharedScan(scan_id=meta["scan_id"], key_id=meta["key_id"], raw_ips=raw_ips, as_of=_utc(meta["as_of"]),
                      campaigns=tuple(campaigns), withheld=dict(sorted(withheld.items())))


def withheld_counts(scan: SharedScan) -> dict[str, int]:
    """Counts of values kept back, by reason, as flat `counts` entries (all integers)."""
    return {f"withheld ({why})": n for why, n in scan.withheld.items()}


def valid_until(value: SharedValue, as_of: datetime) -> datetime:
    return as_of + timedelta(days=value.policy.valid_days)


def sentence(text: str) -> str:
    """Upper-case the first letter only (str.capitalize would lower-case "TLS" and "JA4")."""
    return text[:1].upper() + text[1:]


def write_atomically(out: Path, text: str) -> None:
    """The export, atomically and readable by its owner only: it carries TLP-marked
    intelligence until someone shares it on purpose."""
    with atomic_text(out, private=True) as f:
        f.write(text)
