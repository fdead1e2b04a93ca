"""The simulated internet (catalog.yaml) and the personas (personas.yaml), loaded once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import yaml

# Public first octets only: IPs in a world must look routable, never private.
_PUBLIC_FIRST_OCTETS = np.array(
    [o for o in range(23, 224) if o not in (100, 127, 169, 172, 192, 198, 203)], dtype=np.int64
)


def _load(name: str) -> dict:
    with resources.files("distillguard.simulate").joinpath(name).open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@cache
def catalog() -> dict:
    return _load("catalog.yaml")


@cache
def personas() -> dict:
    """Persona and campaign specs, each merged over the shared defaults."""
    raw = _load("personas.yaml")
    defaults = raw["defaults"]
    merged = {}
    for section in ("personas", "campaigns"):
        for name, spec in raw[section].items():
            merged[name] = {**defaults, **spec, "name": name, "is_campaign": section == "campaigns"}
    return merged


@dataclass(frozen=True)
class Network:
    asn: int
    name: str
    country: str
    kind: str  # residential | mobile | datacenter | campus


def networks(kind: str, country: str | None = None) -> list[Network]:
    cat = catalog()
    if kind == "datacenter":
        return [Network(a, n, "US", kind) for a, n in cat["datacenter"]]
    out = []
    for code, c in cat["countries"].items():
        if country is None or code == country:
            out += [Network(a, n, code, kind) for a, n in c[kind]]
    return out


def stable_hash(*parts: object, length: int = 64) -> str:
    """Hex digest used for ids that must look like keyed hashes (email, card, phone)."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:length]


class IpSpace:
    """Synthetic but stable address blocks per ASN: a few /16s each, derived from the seed."""

    def __init__(self, seed: int):
        self.seed = seed
        self._blocks: dict[int, np.ndarray] = {}

    def blocks(self, asn: int) -> np.ndarray:
        if asn not in self._blocks:
            rng = np.random.default_rng([self.seed, asn, 7])
            first = rng.choice(_PUBLIC_FIRST_OCTETS, 4)
            second = rng.integers(0, 256, 4)
            self._blocks[asn] = first * 256 + second
        return self._blocks[asn]

    def addresses(self, asn: int, n: int, rng: np.random.Generator) -> list[str]:
        block = rng.choice(self.blocks(asn), n)
        c = rng.integers(0, 256, n)
        d = rng.integers(1, 255, n)
        return [f"{b >> 8}.{b & 255}.{x}.{y}" for b, x, y in zip(block, c, d)]

    def subnet(self, asn: int, rng: np.random.Generator, n: int) -> list[str]:
        """n addresses inside one /24 of the ASN: an organisation's egress range."""
        b = int(rng.choice(self.blocks(asn)))
        c = int(rng.integers(0, 256))
        hosts = rng.choice(np.arange(1, 255), size=n, replace=n > 254)
        return [f"{b >> 8}.{b & 255}.{c}.{h}" for h in hosts]


def timezones(country: str) -> dict[str, float]:
    return catalog()["countries"][country]["timezones"]


def tz_offset(tz: str) -> float:
    """Standard UTC offset (hours) of a catalogued zone; server names such as UTC are 0."""
    for c in catalog()["countries"].values():
        if tz in c["timezones"]:
            return float(c["timezones"][tz])
    return 0.0


def client_strings(stack: str, rng: np.random.Generator) -> tuple[str, str]:
    """(user agent, TLS fingerprint) of one install of a client stack."""
    spec = catalog()["clients"][stack]
    lo, hi = spec["versions"]
    # Installs cluster on a few recent releases, so a version string is shared by many.
    ua = spec["ua"].format(v=int(rng.integers(lo, hi + 1)), p=int(rng.integers(0, 3)))
    return ua, catalog()["tls"][spec["tls"]]
