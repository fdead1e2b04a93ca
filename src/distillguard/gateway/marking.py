"""Marking replies, so that a model trained on them can be traced to the account.

The interface is `Marker`: mark a reply for an account, find the marks in a text. One
method ships: `TagCanary`, a per-account canary written in Unicode tag characters
(U+E0000 block), which render as nothing, survive copying, JSON and most dataset
pipelines, and carry HMAC(key, account) so that only the key's holder can make or read
one. A distiller who strips the tag block removes it; a canary raises the cost of
harvesting unseen and proves provenance when it is left in, it does not replace a
watermark in the model's sampling, which a proxy cannot reach.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Protocol

MARK_KEY_ENV = "DISTILLGUARD_MARK_KEY"


class Marker(Protocol):
    name: str

    def mark(self, text: str, account_id: str) -> str: ...

    def find(self, text: str) -> list[str]: ...

    def tag(self, account_id: str) -> str: ...


_BEGIN, _END = "\U000E0001", "\U000E007F"  # LANGUAGE TAG ... CANCEL TAG
_TAG_DIGITS = 16  # hex digits of HMAC-SHA256 kept: 64 bits, no collision among billions of accounts
_FOUND = re.compile(f"{_BEGIN}([\U000E0030-\U000E0039\U000E0061-\U000E0066]{{{_TAG_DIGITS}}}){_END}")
_SENTENCE_END = re.compile(r"[.!?。！？](?=\s)|\n")


class TagCanary:
    name = "tag_canary"

    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ValueError(f"the marking key must be at least 16 bytes (set {MARK_KEY_ENV})")
        self.key = key

    def tag(self, account_id: str) -> str:
        return hmac.new(self.key, f"mark:{account_id}".encode(), hashlib.sha256).hexdigest()[:_TAG_DIGITS]

    def mark(self, text: str, account_id: str) -> str:
        """The text with the account's canary after its first sentence (at its end if none)."""
        canary = _BEGIN + "".join(chr(0xE0000 + ord(c)) for c in self.tag(account_id)) + _END
        end = _SENTENCE_END.search(text)
        at = end.end() if end else len(text)
        return text[:at] + canary + text[at:]

    def find(self, text: str) -> list[str]:
        """The canary tags in a text (hex), in order."""
        return ["".join(chr(ord(c) - 0xE0000) for c in m.group(1)) for m in _FOUND.finditer(text)]

    def attribute(self, text: str, accounts) -> list[str]:
        """Which of these accounts' canaries the text carries."""
        found = set(self.find(text))
        return [a for a in accounts if self.tag(a) in found]
