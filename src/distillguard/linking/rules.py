"""The linking rules (links.yaml) as typed, validated objects."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from distillguard.signals.request import READ_BUCKET_SECONDS


@dataclass(frozen=True)
class Identifier:
    kind: str
    column: str      # a column (or SQL expression) of `source`
    source: str      # accounts | events | reasoning (the blobs of the scan's exchanges)
    weight: float
    decay: float
    max_accounts: int
    about: str


@dataclass(frozen=True)
class Coaction:
    kind: str
    bucket_seconds: int
    weight: float
    max_accounts: int
    min_buckets: int
    about: str


@dataclass(frozen=True)
class Synchrony:
    bucket_seconds: int
    min_exchanges: int
    min_together: int
    min_lift: float
    max_accounts: int
    weight: float
    about: str


# The link kind of shared wording, which communities take in a second layer.
PHRASING = "phrasing"


@dataclass(frozen=True)
class Phrasing:
    prompts_per_account: int
    min_prompts: int  # an account's phrase is its habit only when it recurs across its prompts
    max_accounts: int
    max_share: float
    min_shared: int
    min_lift: float
    weight: float
    about: str


@dataclass(frozen=True)
class LinkRules:
    min_weight: float
    anchors: tuple[str, ...]   # kinds that tie an account to its campaign on their own
    identifiers: tuple[Identifier, ...]
    coaction: tuple[Coaction, ...]
    synchrony: Synchrony
    phrasing: Phrasing

    def about(self) -> dict[str, str]:
        """reason code -> what it means."""
        out = {f"link.{i.kind}": i.about for i in self.identifiers}
        out |= {f"link.coaction_{c.kind}": c.about for c in self.coaction}
        out["link.synchrony"] = self.synchrony.about
        out[f"link.{PHRASING}"] = self.phrasing.about
        return out


class RulesError(ValueError):
    pass


def load_rules(path: str | Path | None = None) -> LinkRules:
    text = Path(path).read_text() if path else resources.files(__package__).joinpath("links.yaml").read_text()
    where = str(path or "linking/links.yaml")
    raw = yaml.safe_load(text)
    try:
        identifiers = tuple(Identifier(kind=k, **v) for k, v in raw["identifiers"].items())
        coaction = tuple(Coaction(kind=k, **v) for k, v in raw["coaction"].items())
        rules = LinkRules(float(raw["min_weight"]), tuple(raw["anchors"]), identifiers, coaction,
                          Synchrony(**raw["synchrony"]), Phrasing(**raw[PHRASING]))
    except (KeyError, TypeError) as e:
        raise RulesError(f"{where}: {e}") from None
    known = {i.kind for i in identifiers} | {"synchrony"}
    if not set(rules.anchors) <= known:
        raise RulesError(f"{where}: anchors must be identifier kinds or synchrony: {sorted(set(rules.anchors) - known)}")
    for i in identifiers:
        if i.source not in ("accounts", "events", "reasoning"):
            raise RulesError(f"{where}: identifier {i.kind}: source must be accounts, events or reasoning, "
                             f"not {i.source!r}")
        if i.weight <= 0 or i.decay < 0 or i.max_accounts < 2:
            raise RulesError(f"{where}: identifier {i.kind}: weight > 0, decay >= 0 and max_accounts >= 2 required")
    for co in coaction:
        # Co-action undoes the content sample by its read probability, which holds only
        # if a co-action bucket lies inside one sample bucket (signals/request.py).
        if co.bucket_seconds < 1 or READ_BUCKET_SECONDS % co.bucket_seconds:
            raise RulesError(f"{where}: coaction {co.kind}: bucket_seconds must divide the content sample's "
                             f"{READ_BUCKET_SECONDS} s bucket, got {co.bucket_seconds}")
    ph = rules.phrasing
    if (ph.prompts_per_account < 1 or not 1 <= ph.min_prompts <= ph.prompts_per_account or ph.max_accounts < 2
            or not 0 < ph.max_share <= 1 or ph.min_shared < 1 or ph.weight <= 0):
        raise RulesError(f"{where}: phrasing: prompts_per_account >= 1, 1 <= min_prompts <= prompts_per_account, "
                         "max_accounts >= 2, 0 < max_share <= 1, min_shared >= 1 and weight > 0 required")
    return rules


@cache
def default_rules() -> LinkRules:
    return load_rules()
