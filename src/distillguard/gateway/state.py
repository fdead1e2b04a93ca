"""The gateway's shared state: the verdicts in force and the sliding windows.

One call per request, `observe`, does everything at once: it reads the account's verdict
and the campaign its identifiers link it to, adds the request to every window (the
campaign's included) and returns each window's value. Two stores:

  MemoryState  in the process (the embedded default: one replica)
  RedisState   shared by replicas through Redis: each replica syncs its counts every
               20 ms in one atomic Lua call, so no request waits on Redis

A window of length L in B buckets sums the buckets that start within the last L seconds,
the current one included: it slides by L/B and over-counts by at most one bucket's worth
(the usual bucketed sliding window). A distinct window counts the values whose latest
request falls in those buckets, exactly, in both stores (a sorted set per entity in Redis).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
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

    def add_new(self, entity: str, value: str, now: float) -> bool:
        """Count a distinct window's value; whether it was new within the window."""
        held = self.entities.get(entity)
        before = held[2].get(value) if held is not None else None
        self.add(entity, value, now)
        return before is None or before < int(now // self.window.bucket_seconds) - self.window.buckets + 1

    def size(self) -> int:
        return len(self.entities) + sum(len(held[2]) for held in self.entities.values() if held[2] is not None)


class MemoryState:
    """Windows in this process; verdicts from a folder store, re-read when CURRENT moves."""

    blocking = False  # observe() never waits on I/O

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
            gc.freeze()  # a table of many objects: out of the collector's scans (Gateway.warm)

    def prepare(self) -> None:
        """Nothing to do: the verdicts are loaded on creation."""

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

    def close(self) -> None:
        """Nothing to release: the state lives and dies with the process."""


# One script call pushes a batch of requests' window updates and reads back the windows they
# touched, atomically. The batch travels as one JSON argument, and the answer as one JSON
# string: encoding and decoding are then single C calls on both sides, where an argument
# per update cost the sync thread ~0.5 ms of Python per 40 requests (time it holds the GIL
# against the requests). Keys are built from the prefix (one hash tag, so that on Redis
# Cluster they share a slot); the windows' shapes are written into the script (_script).
#
# ARGV: prefix, now, batch. The batch holds per window (in policy order) an object
# entity -> updates: {bucket: requests} for a counting window, {value: [its latest bucket,
# ...]} for a distinct one. The answer: the verdict version in force, and the same shape
# with per entity "bucket:count,count,..." (counting: the window's bucket counts as of
# `now`, oldest first) or "bucket:count" (distinct). Strings, so that what a replica holds
# is nothing the Python garbage collector must scan.
_SYNC = """
local prefix, now = ARGV[1], tonumber(ARGV[2])
local batch = cjson.decode(ARGV[3])
local windows = {%(windows)s}
local out = {}
for n, w in ipairs(windows) do
  local name, width, buckets, distinct = w[1], w[2], w[3], w[4]
  local bucket = math.floor(now / width)
  local first = bucket - buckets + 1
  local ttl = width * (buckets + 1)
  local answers = {}
  for entity, updates in pairs(batch[n]) do
    if distinct then
      -- each value scored by the latest bucket it was seen in, as MemoryState keeps it
      local key = prefix .. 'd:' .. name .. ':' .. entity
      local args = {}
      for value, seen in pairs(updates) do
        args[#args + 1] = seen[1]
        args[#args + 1] = value
      end
      redis.call('ZADD', key, 'GT', unpack(args))
      redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. first)
      redis.call('EXPIRE', key, ttl)
      answers[entity] = bucket .. ':' .. redis.call('ZCOUNT', key, first, bucket)
    else
      local base = prefix .. 'w:' .. name .. ':' .. entity .. ':'
      for b, requests in pairs(updates) do
        if redis.call('INCRBY', base .. b, requests) == requests then redis.call('EXPIRE', base .. b, ttl) end
      end
      local keys = {}
      for b = first, bucket do keys[#keys + 1] = base .. b end
      local counts = redis.call('MGET', unpack(keys))
      for i = 1, #counts do counts[i] = counts[i] or '0' end
      answers[entity] = bucket .. ':' .. table.concat(counts, ',')
    end
  end
  out[n] = answers
end
return {redis.call('GET', prefix .. 'verdicts:current') or false, cjson.encode(out)}
"""


def _script(windows: tuple[Window, ...]) -> str:
    shapes = ", ".join(f"{{'{w.name}', {w.bucket_seconds}, {w.buckets}, {'true' if w.distinct else 'false'}}}"
                       for w in windows)
    return _SYNC % {"windows": shapes}


class RedisState:
    """Windows and verdicts shared by every replica through Redis (verdicts put there by
    gateway/verdicts.py publish_redis).

    A request never waits on Redis. Each replica holds the verdict version in force, a
    snapshot of the shared windows it has touched, and the requests it has counted since;
    a window's value is the snapshot plus those requests. Every `sync_every` seconds a
    background thread pushes them in one atomic script call and reads back the shared
    values of the windows they touched (and the verdict version, loading a new one whole).
    So a replica counts its own requests exactly and other replicas' as of its last sync
    of that window (20 ms by default while it sees the window's traffic): a window over a
    minute, an hour or a day is off by that much of other replicas' traffic, and a value
    new to this replica counts as new until the sync says whether another saw it.
    `sync_every=0` makes every request one round trip instead: exact shared counts, at the
    price of Redis's latency on each request.

    If no sync has succeeded for `stale_after` seconds the state is unavailable and the
    gateway fails as configured; after a failure Redis is not asked again for
    `retry_after` seconds, so that an outage costs requests nothing rather than timeouts.
    Values that point at customers (accounts, keys, addresses) enter Redis keys only as
    keyed hashes."""

    SYNC_EVERY = 0.02
    STALE_AFTER = 1.0

    def __init__(self, client, windows: tuple[Window, ...], *, key: bytes, prefix: str = "{dg}:",
                 sync_every: float = SYNC_EVERY, stale_after: float = STALE_AFTER, retry_after: float = 1.0):
        import redis

        self.client = client
        self.windows = windows
        self.prefix = prefix
        self.sync_every = sync_every
        self.stale_after = stale_after
        self.retry_after = retry_after
        # BLAKE2b is a MAC by itself when keyed (one C call; hmac.new costs ~10x more, per
        # request and window); the key is the provider's, narrowed to BLAKE2b's 64 bytes
        self._mac_key = hashlib.blake2b(key, person=b"dg-gateway-keys").digest()
        self._errors = (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError)
        self._script = client.register_script(_script(windows))
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()  # one sync at a time
        # Counted here, not yet in Redis (per window, entity -> counting: {bucket: requests};
        # distinct: {value: [latest bucket, new here]}), and what an unfinished sync is pushing.
        self._pending: list[dict] = [{} for _ in windows]
        self._inflight: list[dict] = [{} for _ in windows]
        # Per window, entity -> its shared value as last read ("bucket:counts"), in two
        # generations: a window length's syncs and the one before; older ones are forgotten.
        self._shared: list[tuple[dict, dict]] = [({}, {}) for _ in windows]
        self._epochs = [0] * len(windows)
        # per distinct window, this replica's own values: which ones are new here
        self._mine = [_WindowState(w) if w.distinct else None for w in windows]
        self._verdicts: VerdictTable | None = None
        self._latest = 0.0  # the latest request time counted: the time a sync reads windows at
        self._synced: float | None = None  # monotonic time of the last successful sync
        self._down_until = 0.0
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        self._stop = threading.Event()

    @classmethod
    def connect(cls, url: str, windows: tuple[Window, ...], *, key: bytes, prefix: str = "{dg}:",
                sync_every: float = SYNC_EVERY, timeout: float = 0.05) -> "RedisState":
        import redis

        # The timeout bounds one sync: a batch of a sync interval's requests, not one request.
        client = redis.Redis.from_url(url, socket_timeout=max(timeout, 4 * sync_every),
                                      socket_connect_timeout=timeout, health_check_interval=0)
        return cls(client, windows, key=key, prefix=prefix, sync_every=sync_every)

    @property
    def blocking(self) -> bool:
        """Whether observe() waits on Redis (a round trip per request)."""
        return self.sync_every == 0

    # ---------------------------------------------------------------- the request path

    def observe(self, now: float, keys: dict[str, str | None], identifiers: list[str]) -> Seen:
        if self._synced is None:
            self.sync(raising=True)  # the verdicts in force, before the first request is counted
        if self.sync_every == 0:
            counted = self._count(now, keys, identifiers)
            self.sync(raising=True)
            return self._read(now, counted)
        if self._thread_pid != os.getpid():  # the first request in this process: syncing starts now
            if time.monotonic() - self._synced > self.sync_every:
                self.sync(raising=True)  # what was read before (prepare(), a parent process) may be old
            self._start_thread()
        if time.monotonic() - self._synced > self.stale_after:
            raise StateUnavailable(f"Redis: no sync for over {self.stale_after:g} s; the shared state is stale")
        return self._read(now, self._count(now, keys, identifiers))

    def _count(self, now: float, keys: dict[str, str | None], identifiers: list[str]):
        """Count the request in this replica's pending windows; what it was counted under."""
        with self._lock:
            table = self._verdicts
            verdict = table.account(keys["account"]) if table else NO_VERDICT
            linked = table.linked_campaign(identifiers) if table else None
            entities = self._entities(keys, verdict.campaign or linked)
            self._latest = max(self._latest, now)
            for n, item in enumerate(entities):
                if item is None:
                    continue
                entity, value = item
                bucket = int(now // self.windows[n].bucket_seconds)
                pending = self._pending[n].setdefault(entity, {})
                if value is None:
                    pending[bucket] = pending.get(bucket, 0) + 1
                    continue
                new_here = self._mine[n].add_new(entity, value, now)
                held = pending.get(value)
                pending[value] = [max(bucket, held[0]), held[1] or new_here] if held else [bucket, new_here]
            return table, verdict, linked, entities

    def _read(self, now: float, counted) -> Seen:
        table, verdict, linked, entities = counted
        with self._lock:
            counts = {w.name: 0 if item is None else self._value(n, item[0], now)
                      for n, (w, item) in enumerate(zip(self.windows, entities))}
        return Seen(table.version if table else None, verdict, linked, counts)

    def _entities(self, keys: dict[str, str | None], campaign: str | None) -> list:
        """Per window: (the entity as it is kept, the value counted or None), or None when the
        request lacks what the window is kept per or counts."""
        out = []
        for w in self.windows:
            entity = campaign if w.per == "campaign" else keys.get(w.per)
            value = keys.get(w.distinct) if w.distinct else None
            if entity is None or (w.distinct and value is None):
                out.append(None)
            else:
                out.append((entity if w.per == "campaign" else self._hashed(f"{w.per}:{entity}"),
                            self._hashed(value) if w.distinct else None))
        return out

    def _value(self, n: int, entity: str, now: float) -> int:
        w = self.windows[n]
        bucket = int(now // w.bucket_seconds)
        first = bucket - w.buckets + 1
        current, previous = self._shared[n]
        shared = current.get(entity) or previous.get(entity)
        local = (self._inflight[n].get(entity), self._pending[n].get(entity))
        total = 0
        if shared is not None:
            at, counts = shared.split(":")
            at = int(at)
            if not w.distinct:  # the window's buckets up to the sync's, oldest first
                total = sum(int(c) for b, c in enumerate(counts.split(","), at - w.buckets + 1) if first <= b <= bucket)
            elif at >= first:
                total = int(counts)
        if not w.distinct:
            return total + sum(c for part in local if part for b, c in part.items() if first <= b <= bucket)
        new = {value for part in local if part for value, (b, new_here) in part.items()
               if new_here and first <= b <= bucket}
        return total + len(new)

    def _hashed(self, value: str) -> str:
        return hashlib.blake2b(value.encode(), key=self._mac_key, digest_size=16).hexdigest()

    # ---------------------------------------------------------------- syncing

    def sync(self, raising: bool = False) -> bool:
        """Push what was counted since the last sync and read back the shared windows it
        touched, and the verdict version in force. False (or StateUnavailable when raising)
        if Redis failed; nothing counted is lost, it goes with the next sync."""
        with self._sync_lock:
            if time.monotonic() < self._down_until:
                if raising:
                    raise StateUnavailable("Redis failed less than a second ago; not asked again yet")
                return False
            with self._lock:
                self._inflight, self._pending = self._pending, [{} for _ in self.windows]
                batch, now = self._inflight, self._latest
            try:
                version, answer = self._script(args=[self.prefix, repr(float(now)), json.dumps(batch)])
                version = version.decode() if version else None
                table = self._verdicts
                if version != (table.version if table else None):
                    table = self._load_verdicts(version)
                    gc.freeze()  # a table of many objects: out of the collector's scans (Gateway.warm)
            except self._errors as e:
                with self._lock:  # kept for the next sync, less what has left its window since
                    for n, w in enumerate(self.windows):
                        _merge(self._pending[n], self._inflight[n], w, self._latest)
                    self._inflight = [{} for _ in self.windows]
                self._down_until = time.monotonic() + self.retry_after
                if raising:
                    raise StateUnavailable(f"Redis: {type(e).__name__}: {e}") from e
                return False
            answers = json.loads(answer)
            with self._lock:
                for n, w in enumerate(self.windows):
                    epoch = int(now // w.seconds)
                    if epoch != self._epochs[n]:  # a window length on: the older generation goes
                        self._shared[n] = ({}, self._shared[n][0])
                        self._epochs[n] = epoch
                    if answers[n]:  # cjson writes an empty object as []
                        self._shared[n][0].update(answers[n])
                self._inflight = [{} for _ in self.windows]
                self._verdicts = table
            self._synced = time.monotonic()
            return True

    def _load_verdicts(self, version: str | None) -> VerdictTable | None:
        if version is None:
            return None
        base = f"{self.prefix}verdicts:{version}"
        accounts = {a.decode(): AccountVerdict.unpacked(v)
                    for a, v in self.client.hscan_iter(f"{base}:accounts", count=10_000) if a}
        identifiers = {i.decode(): c.decode() for i, c in self.client.hscan_iter(f"{base}:identifiers", count=10_000)
                       if i}
        key_id = self.client.get(f"{base}:key_id")
        return VerdictTable(version=version, key_id=key_id.decode() if key_id else "", accounts=accounts,
                            identifiers=identifiers)

    def _start_thread(self) -> None:
        # started by the first request, in the process that serves it (not one it was forked from)
        self._thread_pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="distillguard-redis-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.sync_every):
            if not self.sync():
                self._stop.wait(self.retry_after)

    def prepare(self) -> None:
        """Load the verdicts in force now, rather than on the first request."""
        if self._synced is None:
            self.sync()

    def close(self) -> None:
        """Stop syncing, after one last push of what was counted."""
        self._stop.set()
        if self._thread is not None and self._thread_pid == os.getpid():
            self._thread.join(timeout=2)
        if any(self._pending):
            self.sync()

    # ---------------------------------------------------------------- health

    def probe(self) -> tuple[str, str | None]:
        """(ok or unavailable, the verdict version in force): one GET, on the short timeout."""
        try:
            version = self.client.get(f"{self.prefix}verdicts:current")
        except self._errors:
            return "unavailable", None
        return "ok", version.decode() if version else None

    def size(self) -> int:
        """Entities and values held (the soak benchmark watches it)."""
        with self._lock:
            return (sum(len(a) + len(b) for a, b in self._shared) + sum(m.size() for m in self._mine if m)
                    + sum(len(p) for p in self._pending))


def _merge(into: dict, batch: dict, w: Window, now: float) -> None:
    """An unsent batch back into the pending one (entity -> updates), less what has left the
    window by `now`: an outage keeps at most a window of counts."""
    first = int(now // w.bucket_seconds) - w.buckets + 1
    for entity, updates in batch.items():
        held = into.setdefault(entity, {})
        for k, v in updates.items():
            if (v[0] if w.distinct else k) < first:
                continue
            if not w.distinct:
                held[k] = held.get(k, 0) + v
            elif k in held:
                held[k] = [max(held[k][0], v[0]), held[k][1] or v[1]]
            else:
                held[k] = v
        if not held:
            del into[entity]
