"""The gateway's shared state: the verdicts in force and the sliding windows.

One call per request, `observe`, does everything atomically: it reads the account's
verdict and the campaign its identifiers link it to, adds the request to every window
(the campaign's included) and returns each window's value. Two stores:

  MemoryState  in the process (the embedded default: one replica)
  RedisState   in Redis, one Lua script per request (replicas share it)

A window of length L in B buckets sums the buckets that start within the last L seconds,
the current one included: it slides by L/B and over-counts by at most one bucket's worth
(the usual bucketed sliding window). A distinct window counts the values whose latest
request falls in those buckets, exactly, in both stores (a sorted set per entity in Redis).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from distillguard.gateway.policy import Window
from distillguard.gateway.verdicts import NO_VERDICT, AccountVerdict, VerdictTable, current_version, load


class StateUnavailable(RuntimeError):
    """The shared state could not be read or updated (Redis down, timed out)."""


@dataclass(frozen=True)
class Seen:
    version: str | None  # the verdict version in force, None when none is published
    verdict: AccountVerdict
    linked_campaign: str | None
    counts: dict[str, int]  # window name -> its value, this request included

    @property
    def campaign(self) -> str | None:
        return self.verdict.campaign or self.linked_campaign


class _WindowState:
    """One window's entities in memory, least recently seen first, so that expired ones are
    forgotten from the front a few at a time: no request pays for a sweep of them all, and
    what is held is bounded by one window of traffic however long the process runs."""

    # Expired entities forgotten per request, at most: more than the one a request can add.
    FORGET_PER_CALL = 4

    def __init__(self, window: Window):
        self.window = window
        # entity -> [latest bucket, bucket -> count, value -> its latest bucket (distinct windows)]
        self.entities: OrderedDict[str, list] = OrderedDict()

    def add(self, entity: str, value: str | None, now: float) -> int:
        """Count a request (or, in a distinct window, its value) and return the window's value."""
        w = self.window
        bucket = int(now // w.bucket_seconds)
        first = bucket - w.buckets + 1
        held = self.entities.get(entity)
        if held is None:
            held = self.entities[entity] = [bucket, {}, OrderedDict() if w.distinct else None]
        else:
            self.entities.move_to_end(entity)
            held[0] = max(held[0], bucket)
        counts, latest = held[1], held[2]
        if latest is None:
            counts[bucket] = counts.get(bucket, 0) + 1
        else:
            before = latest.get(value)
            if before is None or before < bucket:  # an out-of-order request keeps the later bucket
                if before is not None:
                    counts[before] -= 1
                counts[bucket] = counts.get(bucket, 0) + 1
                latest[value] = bucket
                latest.move_to_end(value)
            while latest and (oldest := next(iter(latest.items())))[1] < first:
                del latest[oldest[0]]
                counts[oldest[1]] -= 1
        for b in [b for b in counts if b < first]:
            del counts[b]
        for _ in range(self.FORGET_PER_CALL):
            if not self.entities or (oldest := next(iter(self.entities.items())))[1][0] >= first:
                break
            del self.entities[oldest[0]]
        return sum(c for b, c in counts.items() if b <= bucket)

    def size(self) -> int:
        return len(self.entities) + sum(len(held[2]) for held in self.entities.values() if held[2] is not None)


class MemoryState:
    """Windows in this process; verdicts from a folder store, re-read when CURRENT moves."""

    # The verdict store's pointer is looked at no more often than this (seconds).
    RELOAD_EVERY = 1.0

    def __init__(self, windows: tuple[Window, ...], store: str | Path | None = None,
                 link_kinds: tuple[str, ...] = ()):
        self.windows = windows
        self.store = Path(store) if store else None
        self.link_kinds = link_kinds
        self._lock = threading.Lock()
        self._windows = [_WindowState(w) for w in windows]
        self._verdicts: VerdictTable | None = None
        self._checked = 0.0
        self._reload(force=True)

    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.store is None or (not force and now - self._checked < self.RELOAD_EVERY):
            return
        self._checked = now
        version = current_version(self.store)
        if version is not None and (self._verdicts is None or self._verdicts.version != version):
            self._verdicts = load(self.store, version, link_kinds=self.link_kinds)

    def probe(self) -> tuple[str, str | None]:
        """(ok, the verdict version in force): for /health."""
        table = self._verdicts
        return "ok", table.version if table else None

    def use(self, verdicts: VerdictTable) -> None:
        """Put a verdict table in force directly (tests, replays)."""
        with self._lock:
            self._verdicts = verdicts

    def observe(self, now: float, keys: dict[str, str | None], identifiers: list[str]) -> Seen:
        with self._lock:
            self._reload()
            table = self._verdicts
            verdict = table.account(keys["account"]) if table else NO_VERDICT
            linked = table.linked_campaign(identifiers) if table else None
            keys = {**keys, "campaign": verdict.campaign or linked}
            counts = {}
            for state in self._windows:
                w = state.window
                entity, value = keys.get(w.per), keys.get(w.distinct) if w.distinct else None
                missing = entity is None or (w.distinct is not None and value is None)
                counts[w.name] = 0 if missing else state.add(entity, value, now)
            return Seen(table.version if table else None, verdict, linked, counts)

    def size(self) -> int:
        """Entities and values held (the soak benchmark watches it)."""
        with self._lock:
            return sum(state.size() for state in self._windows)


# One round trip per request. Keys are built here from the prefix (one hash tag, so that on
# Redis Cluster they share a slot). The windows are written into the script (_script), so
# that a call sends only this request's values. ARGV: prefix, now, account, #identifiers,
# identifiers..., then per window: entity ('' when the request lacks it; '@campaign' for
# the campaign, known only after the lookup) and, for a distinct window, the value counted.
_OBSERVE = """
local prefix, now, account = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local version = redis.call('GET', prefix .. 'verdicts:current')
local verdict, linked = false, false
local n_ids = tonumber(ARGV[4])
if version then
  local base = prefix .. 'verdicts:' .. version
  verdict = redis.call('HGET', base .. ':accounts', account)
  if n_ids > 0 then
    local found = redis.call('HMGET', base .. ':identifiers', unpack(ARGV, 5, 4 + n_ids))
    for _, c in ipairs(found) do if c then linked = c; break end end
  end
end
local campaign = linked
if verdict then
  local c = cjson.decode(verdict)[2]
  if c ~= cjson.null then campaign = c end
end
local i = 5 + n_ids
local counts = {}
local function count(name, width, buckets, distinct)
  local entity = ARGV[i]
  local value = distinct and ARGV[i + 1] or ''
  i = i + (distinct and 2 or 1)
  if entity == '@campaign' then entity = campaign or '' end
  if entity == '' then return 0 end
  local bucket = math.floor(now / width)
  local first = bucket - buckets + 1
  local ttl = width * (buckets + 1)
  if not distinct then
    local base = prefix .. 'w:' .. name .. ':' .. entity .. ':'
    redis.call('INCR', base .. bucket)
    redis.call('EXPIRE', base .. bucket, ttl)
    local keys = {}
    for b = first, bucket do keys[#keys + 1] = base .. b end
    local total = 0
    for _, v in ipairs(redis.call('MGET', unpack(keys))) do if v then total = total + tonumber(v) end end
    return total
  end
  -- each value scored by the latest bucket it was seen in, as MemoryState keeps it
  local key = prefix .. 'd:' .. name .. ':' .. entity
  redis.call('ZADD', key, 'GT', bucket, value)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. first)
  redis.call('EXPIRE', key, ttl)
  return redis.call('ZCOUNT', key, first, bucket)
end
%(windows)s
return {version or false, verdict, linked, counts}
"""


def _script(windows: tuple[Window, ...]) -> str:
    calls = "\n".join(f"counts[#counts + 1] = count('{w.name}', {w.bucket_seconds}, {w.buckets}, "
                      f"{'true' if w.distinct else 'false'})" for w in windows)
    return _OBSERVE % {"windows": calls}


class RedisState:
    """Windows and verdicts in Redis (verdicts put there by gateway/verdicts.py publish_redis).

    Values that point at customers (accounts, keys, addresses) enter Redis keys only as
    keyed hashes. After a failure Redis is not asked again for `retry_after` seconds, so
    that an outage costs each request nothing rather than a timeout."""

    def __init__(self, client, windows: tuple[Window, ...], *, key: bytes, prefix: str = "{dg}:",
                 retry_after: float = 1.0):
        import redis

        self.client = client
        self.windows = windows
        self.prefix = prefix
        self.key = key
        self.retry_after = retry_after
        self._errors = (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError)
        self._script = client.register_script(_script(windows))
        self._down_until = 0.0

    @classmethod
    def connect(cls, url: str, windows: tuple[Window, ...], *, key: bytes, prefix: str = "{dg}:",
                timeout: float = 0.05) -> "RedisState":
        import redis

        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                      health_check_interval=0)
        return cls(client, windows, key=key, prefix=prefix)

    def probe(self) -> tuple[str, str | None]:
        """(ok or unavailable, the verdict version in force): one GET, on the short timeout."""
        try:
            version = self.client.get(f"{self.prefix}verdicts:current")
        except self._errors:
            return "unavailable", None
        return "ok", version.decode() if version else None

    def _hashed(self, value: str) -> str:
        return hmac.new(self.key, value.encode(), hashlib.blake2b).hexdigest()[:32]

    def observe(self, now: float, keys: dict[str, str | None], identifiers: list[str]) -> Seen:
        if time.monotonic() < self._down_until:
            raise StateUnavailable("Redis failed less than a second ago; not asked again yet")
        argv = [self.prefix, repr(float(now)), keys["account"], len(identifiers), *identifiers]
        for w in self.windows:
            entity = "@campaign" if w.per == "campaign" else keys.get(w.per)
            value = keys.get(w.distinct) if w.distinct else ""
            if entity is None or value is None:
                entity = ""
            elif w.per != "campaign":
                entity = self._hashed(f"{w.per}:{entity}")
            argv += [entity, self._hashed(value) if value else ""] if w.distinct else [entity]
        try:
            version, verdict, linked, counts = self._script(args=argv)
        except self._errors as e:
            self._down_until = time.monotonic() + self.retry_after
            raise StateUnavailable(f"Redis: {type(e).__name__}: {e}") from e
        return Seen(version.decode() if version else None,
                    AccountVerdict.unpacked(verdict) if verdict else NO_VERDICT,
                    linked.decode() if linked else None,
                    {w.name: int(c) for w, c in zip(self.windows, counts)})
