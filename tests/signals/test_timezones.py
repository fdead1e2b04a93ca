"""Client time zone against billing country: offsets from the tz database, classes
from the engine join."""

from __future__ import annotations

import pyarrow as pa
import pytest

from distillguard.engine import Engine
from distillguard.signals.timezones import (
    TZ_CLASSES, country_offsets_table, country_zones, is_server_utc, tz_class_sql, tz_offsets,
    tz_offsets_table,
)

YEARS = (2025, 2026)


@pytest.fixture(scope="module")
def countries() -> pa.Table:
    return country_offsets_table(YEARS)


def classify(countries: pa.Table, pairs: list[tuple[str | None, str | None]]) -> list[str]:
    """tz_class of each (client time zone, billing country), through the engine."""
    requests = pa.table({"i": pa.array(range(len(pairs)), pa.int64()),
                         "client_timezone": pa.array([p[0] for p in pairs], pa.string()),
                         "billing_country": pa.array([p[1] for p in pairs], pa.string())})
    with Engine.open() as engine:
        engine.register("requests", requests)
        engine.register("client_tz_offsets", tz_offsets_table(requests["client_timezone"].to_pylist(), YEARS))
        engine.register("country_tz_offsets", countries)
        rows = engine.rows(f"""
            SELECT r.i, t.tz_class FROM requests r
            LEFT JOIN ({tz_class_sql('requests')}) t
              ON t.client_timezone IS NOT DISTINCT FROM r.client_timezone
             AND t.billing_country IS NOT DISTINCT FROM r.billing_country
            ORDER BY r.i""")
    assert all(c in TZ_CLASSES for _, c in rows)
    return [c for _, c in rows]


def test_the_cases_of_the_brief(countries):
    cases = {
        ("America/New_York", "US"): "consistent",
        ("Asia/Shanghai", "US"): "mismatch",
        ("Europe/London", "GB"): "consistent",
        ("+00:00", "GB"): "server_utc",
        ("+01:00", "GB"): "consistent",       # London in summer, as an offset
        ("UTC", "US"): "server_utc",
        ("Z", "CN"): "server_utc",
        ("Etc/UTC", None): "server_utc",
        ("Asia/Kolkata", "IN"): "consistent",
        ("+05:30", "IN"): "consistent",
        ("+08:00", "SG"): "consistent",
        ("+08:00", "US"): "mismatch",
        ("US/Pacific", "US"): "consistent",  # legacy link
        ("Asia/Calcutta", "IN"): "consistent",
        ("asia/shanghai", "CN"): "consistent",  # letter case
        ("Etc/GMT-8", "CN"): "consistent",   # POSIX sign: UTC+8
        ("Etc/GMT-8", "US"): "mismatch",
        ("Etc/GMT+5", "US"): "consistent",   # UTC-5
        ("UTC+8", "SG"): "consistent",
        ("GMT-3", "BR"): "consistent",       # common usage: UTC-3
        ("-0530", "IN"): "mismatch",
        ("Asia/Tokyo", "KR"): "consistent",  # 9 == 9
        ("Asia/Tokyo", "CN"): "consistent",  # within the hour's tolerance
        ("Europe/Moscow", "CN"): "mismatch",
        ("Africa/Abidjan", "US"): "mismatch",  # offset 0, but a place, not a server
        ("garbage", "US"): "unknown",
        ("../../etc/passwd", "US"): "unknown",
        ("UTC+99", "US"): "unknown",
        ("America/New_York", "XX"): "unknown",
        ("America/New_York", None): "unknown",
        (None, "US"): "unknown",
    }
    assert dict(zip(cases, classify(countries, list(cases)))) == cases


@pytest.mark.parametrize("country", ["RU", "US", "AU", "BR", "CA", "MX", "ID", "KZ"])
def test_a_country_with_many_zones_accepts_each(countries, country):
    zones = country_zones()[country]
    assert len(zones) >= 2
    assert set(classify(countries, [(z, country) for z in zones])) == {"consistent"}


def test_offsets_of_names(countries):
    assert tz_offsets("Europe/London", YEARS) == {0, 60}       # winter and summer
    assert tz_offsets("Asia/Kolkata", YEARS) == {330}
    assert tz_offsets("Asia/Kathmandu", YEARS) == {345}
    assert tz_offsets("Australia/Lord_Howe", YEARS) == {630, 660}  # a half-hour shift
    assert tz_offsets("US/Eastern", YEARS) == tz_offsets("America/New_York", YEARS) == {-300, -240}
    assert tz_offsets("Etc/GMT-8") == {480} and tz_offsets("Etc/GMT+3") == {-180}
    assert tz_offsets("-0530") == {-330} and tz_offsets("UTC +5:30") == {330} and tz_offsets("+8") == {480}
    assert tz_offsets("nowhere/city") is None and tz_offsets("x" * 500) is None and tz_offsets(None) is None
    gb = {r["offset_minutes"] for r in countries.to_pylist() if r["country"] == "GB"}
    assert gb == {0, 60}
    assert {r["offset_minutes"] for r in countries.to_pylist() if r["country"] == "IN"} == {330}


def test_server_utc_is_utc_itself_not_a_zone_at_zero():
    utc = ["UTC", "utc", "Z", "Etc/UTC", "GMT", "Etc/GMT", "Zulu", "+00:00", "-0000", "UTC+0"]
    assert all(is_server_utc(n) for n in utc)
    assert not any(is_server_utc(n) for n in ["Europe/London", "Africa/Abidjan", "Atlantic/Reykjavik", "+01:00", None])


def test_the_tables(countries):
    assert countries.schema.names == ["country", "offset_minutes"]
    assert countries.num_rows == len(set(zip(*countries.to_pydict().values())))
    assert len(set(countries["country"].to_pylist())) >= 240
    table = tz_offsets_table(["Europe/London", "Europe/London", "garbage", None, "UTC"], YEARS)
    assert table.schema.names == ["client_timezone", "offset_minutes", "server_utc"]
    assert table.to_pylist() == [
        {"client_timezone": "Europe/London", "offset_minutes": 0, "server_utc": False},
        {"client_timezone": "Europe/London", "offset_minutes": 60, "server_utc": False},
        {"client_timezone": "UTC", "offset_minutes": 0, "server_utc": True},
    ]
