"""Time-zone consistency: does the client's reported time zone fit the billing country?

A reseller in Shanghai that pays with a US card still runs its clients on Shanghai
time, and SDKs and browsers report it. A request is

* ``server_utc`` when the client reports plain UTC ('UTC', 'Z', 'Etc/UTC', 'GMT',
  '+00:00', ...): servers and containers run on UTC everywhere, so this is a category
  of its own and no evidence of a mismatch (a geographic zone at offset 0, such as
  'Europe/London' or 'Africa/Abidjan', is not in it);
* ``consistent`` when some UTC offset of its client time zone lies within
  `TOLERANCE_MINUTES` of some offset used anywhere in the billing country (standard
  and daylight time, this year and last);
* ``mismatch`` when none does;
* ``unknown`` when the time zone cannot be read or the country has no zone.

Client time zones come as IANA names, legacy links included ('Asia/Calcutta',
'US/Eastern'), in any letter case, or as offsets ('+08:00', '-0530', 'UTC+8',
'GMT-3'); 'Etc/GMT-8' is UTC+8, as POSIX inverts the sign of the Etc/GMT names.

Python reads the tz database (the `tzdata` package, through `zoneinfo`; no OS files)
once per distinct name, never per request: the caller selects the distinct client
time zones of a scan in SQL, `tz_offsets_table` turns them into a small table, and
`tz_class_sql` joins it with `country_offsets_table` in the engine.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from importlib import resources

import pyarrow as pa

from distillguard.engine import ident

__all__ = [
    "TZ_CLASSES", "TOLERANCE_MINUTES",
    "country_zones", "country_offsets_table", "tz_offsets", "is_server_utc", "tz_offsets_table", "tz_class_sql",
]

TZ_CLASSES = ("consistent", "mismatch", "server_utc", "unknown")
# A client may sit an hour off its country's zones (a border town, a laptop not yet
# switched to daylight time) without being elsewhere; Shanghai (+8) is 12 hours from
# New York and 9 from Moscow.
TOLERANCE_MINUTES = 60
# Client time zones are attacker-controlled strings; the longest IANA name has 32
# characters ('America/Argentina/ComodRivadavia').
_MAX_NAME_CHARS = 64

# Names of UTC itself in the tz database (lower-cased), and what clients send for it.
_UTC_NAMES = frozenset({
    "utc", "uct", "gmt", "gmt0", "gmt+0", "gmt-0", "greenwich", "universal", "zulu", "z",
    "etc/utc", "etc/uct", "etc/gmt", "etc/gmt0", "etc/gmt+0", "etc/gmt-0", "etc/greenwich",
    "etc/universal", "etc/zulu",
})
# '+08:00', '-0530', '+8', 'UTC+8', 'GMT-03:00', 'UTC +5:30'. 'GMT-3' here means UTC-3
# (common usage): only the IANA 'Etc/GMT-3' has the inverted POSIX sign.
_OFFSET_RE = re.compile(r"(?:utc|gmt)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)


def _default_years() -> tuple[int, ...]:
    year = datetime.now(timezone.utc).year
    return (year - 1, year)


@functools.lru_cache(maxsize=1)
def _iana_names() -> dict[str, str]:
    """lower-cased IANA name -> its key in the tz database (so lookups never touch a
    path that a client made up)."""
    return {name.lower(): name for name in zoneinfo.available_timezones()}


@functools.lru_cache(maxsize=4096)
def _zone_offsets(zone: str, years: tuple[int, ...]) -> frozenset[int]:
    """Every UTC offset (minutes) the zone used in those years: sampled daily, as no
    period of an offset is shorter than a day (Morocco's Ramadan switch is a month)."""
    tz = zoneinfo.ZoneInfo(zone)
    found = set()
    for year in years:
        day = datetime(year, 1, 1, 12, tzinfo=timezone.utc)
        while day.year == year:
            found.add(int(day.astimezone(tz).utcoffset().total_seconds()) // 60)
            day += timedelta(days=1)
    return frozenset(found)


@functools.lru_cache(maxsize=1)
def country_zones() -> dict[str, tuple[str, ...]]:
    """ISO 3166 country -> the IANA zones that overlap it, from the tz database's
    zone1970.tab (one row per zone, with one or more countries)."""
    text = resources.files("tzdata").joinpath("zoneinfo", "zone1970.tab").read_text(encoding="utf-8")
    zones: dict[str, set[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        codes, _coordinates, zone = line.split("\t")[:3]
        for code in codes.split(","):
            zones.setdefault(code, set()).add(zone)
    return {code: tuple(sorted(z)) for code, z in sorted(zones.items())}


def country_offsets_table(years: Iterable[int] | None = None) -> pa.Table:
    """(country, offset_minutes): every UTC offset used by any zone of each country in
    `years` (default: this year and last), one row per distinct pair."""
    ys = tuple(sorted(set(years))) if years is not None else _default_years()
    countries, offsets = [], []
    for code, zones in country_zones().items():
        for offset in sorted(set().union(*(_zone_offsets(z, ys) for z in zones))):
            countries.append(code)
            offsets.append(offset)
    return pa.table({"country": pa.array(countries, pa.string()),
                     "offset_minutes": pa.array(offsets, pa.int32())})


def is_server_utc(name: str | None) -> bool:
    """Whether a client time zone is UTC itself (not a zone that happens to be at 0)."""
    if name is None:
        return False
    key = name.strip().lower()
    if key in _UTC_NAMES:
        return True
    m = _OFFSET_RE.fullmatch(key)
    return bool(m) and int(m.group(2)) == 0 and int(m.group(3) or 0) == 0


def tz_offsets(name: str | None, years: Iterable[int] | None = None) -> frozenset[int] | None:
    """The UTC offsets (minutes) a client time zone string stands for: both of a zone
    with daylight time, one for a fixed offset; None when it cannot be read."""
    if name is None or len(name) > _MAX_NAME_CHARS:
        return None
    key = name.strip()
    zone = _iana_names().get(key.lower())
    if zone is not None:
        return _zone_offsets(zone, tuple(sorted(set(years))) if years is not None else _default_years())
    if key.lower() in _UTC_NAMES:
        return frozenset({0})
    m = _OFFSET_RE.fullmatch(key)
    if not m:
        return None
    hours, minutes = int(m.group(2)), int(m.group(3) or 0)
    total = hours * 60 + minutes
    # Real offsets run from -12:00 to +14:00.
    if minutes >= 60 or total > 14 * 60 or (m.group(1) == "-" and total > 12 * 60):
        return None
    return frozenset({-total if m.group(1) == "-" else total})


def tz_offsets_table(names: Iterable[str | None], years: Iterable[int] | None = None) -> pa.Table:
    """(client_timezone, offset_minutes, server_utc) for the distinct client time zone
    strings of a scan, one row per offset; a name that cannot be read has no row."""
    ys = tuple(sorted(set(years))) if years is not None else None
    out: dict[str, list] = {"client_timezone": [], "offset_minutes": [], "server_utc": []}
    for name in sorted({n for n in names if n is not None}):
        offsets = tz_offsets(name, ys)
        for offset in sorted(offsets or ()):
            out["client_timezone"].append(name)
            out["offset_minutes"].append(offset)
            out["server_utc"].append(is_server_utc(name))
    return pa.table({"client_timezone": pa.array(out["client_timezone"], pa.string()),
                     "offset_minutes": pa.array(out["offset_minutes"], pa.int32()),
                     "server_utc": pa.array(out["server_utc"], pa.bool_())})


def tz_class_sql(pairs: str, client_offsets: str = "client_tz_offsets", country_offsets: str = "country_tz_offsets",
                 tz_col: str = "client_timezone", country_col: str = "billing_country") -> str:
    """SQL: (tz_col, country_col, tz_class) for each distinct pair in the relation
    `pairs` (a table name or a parenthesised query), given the tables of
    `tz_offsets_table` and `country_offsets_table` registered as client_offsets and
    country_offsets. Join it back to the requests on both columns; a NULL time zone or
    country gives 'unknown'."""
    tz, country = ident(tz_col), ident(country_col)
    return f"""
SELECT p.{tz}, p.{country},
  CASE
    WHEN bool_or(o.server_utc) THEN 'server_utc'
    WHEN count(o.offset_minutes) = 0 OR count(c.offset_minutes) = 0 THEN 'unknown'
    WHEN bool_or(abs(o.offset_minutes - c.offset_minutes) <= {TOLERANCE_MINUTES}) THEN 'consistent'
    ELSE 'mismatch'
  END AS tz_class
FROM (SELECT DISTINCT {tz}, {country} FROM {pairs}) p
LEFT JOIN {client_offsets} o ON o.client_timezone = p.{tz}
LEFT JOIN {country_offsets} c ON c.country = p.{country}
GROUP BY p.{tz}, p.{country}"""
