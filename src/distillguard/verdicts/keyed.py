"""Keyed hashes: how identifiers that point at customers leave the system.

A value is written as  hmac-sha256:HEX  where HEX = HMAC-SHA256(key, "<namespace>:<value>"),
the namespace being the kind of identifier (ip, email, payment, phone: indicators.yaml).
The key is the provider's secret (DISTILLGUARD_INDICATOR_KEY), never stored with the
output: without it nobody can test a guess (an e-mail hash, an IP) against a value.
Two labs that agree on a key get the same hash for the same identifier, so they can
match indicators without revealing them (docs/sharing.md says what this protects).
The namespace is part of the message so that an IP and an e-mail hash that happen to
be the same text never match each other, while an IP seen at signup and one seen on a
request do.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os

KEY_ENV = "DISTILLGUARD_INDICATOR_KEY"
PREFIX = "hmac-sha256:"
# A key shorter than this is guessable; HMAC-SHA256's own block-size key is 64 bytes.
MIN_KEY_BYTES = 16


class MissingKey(ValueError):
    pass


def indicator_key() -> bytes:
    """The provider's key, from the environment; refuses a missing or short one."""
    key = os.environ.get(KEY_ENV, "").encode()
    if not key:
        raise MissingKey(f"set {KEY_ENV} to a secret of at least {MIN_KEY_BYTES} bytes: customer identifiers "
                         "leave a scan only as keyed hashes (docs/sharing.md); e.g. "
                         f"export {KEY_ENV}=$(python3 -c 'import secrets; print(secrets.token_hex(32))')")
    if len(key) < MIN_KEY_BYTES:
        raise MissingKey(f"{KEY_ENV} is {len(key)} bytes; use at least {MIN_KEY_BYTES} (a random hex string)")
    return key


def canonical(namespace: str, value: str) -> str:
    """The text that is hashed. Values are trimmed; an IP is written in its standard form
    (RFC 5952 for IPv6: 2001:DB8:0::7 and 2001:db8::7 are one address). Other values are
    hashed exactly as the provider's logs hold them."""
    value = value.strip()
    if namespace == "ip":
        try:
            value = ipaddress.ip_address(value).compressed
        except ValueError:  # not an address after all: still hashed, as written
            value = value.lower()
    return f"{namespace}:{value}"


def keyed_hash(namespace: str, value: str, key: bytes) -> str:
    digest = hmac.new(key, canonical(namespace, value).encode(), hashlib.sha256).hexdigest()
    return PREFIX + digest


def key_id(key: bytes) -> str:
    """A public name for a key: partners compare it to know they hash with the same one."""
    return hmac.new(key, b"distillguard key id", hashlib.sha256).hexdigest()[:16]
