"""The report's charts as Vega-Lite specs (Altair), rendered by the browser from data
embedded in the page. Data sent to a chart is aggregated first (hourly rows binned
so that a chart has at most MAX_BINS bars), so the page stays small for any scan.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import altair as alt

MAX_BINS = 250
BIN_HOURS = (1, 2, 3, 6, 12, 24, 48, 168)
MAX_DAYS = 62              # rows of the day-by-hour chart; the latest days are kept
WIDTH = 760
ACTION_COLOURS = {"suspend": "#b3261e", "challenge": "#e8710a", "monitor": "#c9a100", "none": "#9aa0a6"}
# Identifier kinds in the account graph, one colour each, none of them an action colour.
KIND_COLOURS = ("#1a73e8", "#12b5cb", "#7e57c2", "#188038", "#a142f4", "#5f6368", "#00897b", "#3949ab",
                "#6d4c41", "#d01884", "#4e342e", "#0d652d")
OTHER = "other traffic"


@dataclass(frozen=True)
class Window:
    """The scanned time range, shared by every time chart so that they line up."""
    start: datetime
    end: datetime
    bin_hours: int
    models: tuple[str, ...]

    @classmethod
    def of(cls, first_hour: datetime, last_hour: datetime, models: list[str]) -> Window:
        start, end = first_hour, last_hour + timedelta(hours=1)
        span = (end - start).total_seconds() / 3600
        bin_hours = next((b for b in BIN_HOURS if span / b <= MAX_BINS), BIN_HOURS[-1])
        return cls(start, end, bin_hours, tuple(sorted(models)))

    def bin(self, t: datetime) -> datetime:
        return self.start + timedelta(hours=self.bin_hours * ((t - self.start) // timedelta(hours=self.bin_hours)))


def _ms(t: datetime) -> int:
    """Epoch milliseconds: the most compact time Vega reads, and free of time-zone parsing."""
    return round(t.timestamp() * 1000)


def _when(t: datetime) -> str:
    # Tooltips show times written here: a time format in the spec comes out NaN under Vega's AST interpreter.
    return t.strftime("%Y-%m-%d %H:%M")


def _time_axis(window: Window, title: str, binned: bool = False) -> alt.X:
    """The shared time axis, in UTC whatever the viewer's time zone, one tick per day or
    per few days. binned: rows are bars from t to e (a histogram, stacked).

    The domain is an expression because Vega-Lite parses a literal temporal domain twice
    in a layered chart (and warns) and its domainMin/domainMax come out null under Vega's
    AST interpreter; no time `format`, which fails under that interpreter."""
    domain = alt.ExprRef(f"[{_ms(window.start)}, {_ms(window.end)}]")
    ticks = alt.TimeIntervalStep(interval="day", step=max(1, math.ceil((window.end - window.start).days / 10)))
    return alt.X("t:T", title=title, bin="binned" if binned else alt.Undefined,
                 scale=alt.Scale(type="utc", domain=domain), axis=alt.Axis(labelAngle=0, tickCount=ticks))


def _binned(rows: list[dict], key: str, window: Window) -> list[dict]:
    sums: dict[tuple[datetime, str], int] = defaultdict(int)
    for r in rows:
        sums[(window.bin(r["hour"]), r[key])] += r["exchanges"]
    step = timedelta(hours=window.bin_hours)
    return [{"t": _ms(t), "e": _ms(min(t + step, window.end)), "w": _when(t), key: k, "n": n}
            for (t, k), n in sorted(sums.items())]


def _releases(releases: list[dict], data: dict) -> alt.LayerChart:
    """Dashed rules at each model's first exchange (the x scale is the bars' one)."""
    data["releases"] = [{"t": _ms(r["first_seen"]), "w": _when(r["first_seen"]), "label": f"{r['model']} first seen"}
                        for r in releases]
    source = alt.Chart(alt.Data(name="releases"))
    rule = source.mark_rule(strokeDash=[4, 3], color="#202124").encode(
        x="t:T", tooltip=[alt.Tooltip("label:N", title="model"), alt.Tooltip("w:N", title="at (UTC)")])
    text = source.mark_text(align="left", baseline="top", dx=3, dy=2, fontSize=11, color="#202124").encode(
        x="t:T", y=alt.value(0), text="label:N")
    return rule + text


def _bars(key: str, domain: list[str], range_: list[str] | None, window: Window, title: str) -> alt.Chart:
    scale = alt.Scale(domain=domain, range=range_) if range_ else alt.Scale(domain=domain, scheme="tableau10")
    return alt.Chart(alt.Data(name="bars")).mark_bar().encode(
        x=_time_axis(window, f"time (UTC), {window.bin_hours} h per bar", binned=True), x2="e:T",
        y=alt.Y("n:Q", title="exchanges", stack="zero"),
        color=alt.Color(f"{key}:N", title=title, scale=scale, sort=domain),
        tooltip=[alt.Tooltip(f"{key}:N", title=title), alt.Tooltip("w:N", title="from (UTC)"),
                 alt.Tooltip("n:Q", title="exchanges", format=",")])


def timeline(hours: list[dict], releases: list[dict], window: Window) -> dict:
    """A campaign's exchanges over time by model, each release marked: a campaign that
    moves to a new model within hours of its first appearance shows as a colour switch."""
    data = {"bars": _binned(hours, "model", window)}
    bars = _bars("model", list(window.models), None, window, "model")
    return _top((bars + _releases(releases, data)).properties(width=WIDTH, height=180), data)


def overview(everything: list[dict], campaigns: list[dict], ids: list[str], releases: list[dict],
             window: Window) -> dict:
    """All traffic over time, the campaigns' part of it coloured."""
    rows = [{"hour": r["hour"], "series": r["campaign_id"], "exchanges": r["exchanges"]} for r in campaigns]
    flagged: dict[datetime, int] = defaultdict(int)
    for r in campaigns:
        flagged[r["hour"]] += r["exchanges"]
    total: dict[datetime, int] = defaultdict(int)
    for r in everything:
        total[r["hour"]] += r["exchanges"]
    rows += [{"hour": h, "series": OTHER, "exchanges": n - flagged[h]} for h, n in sorted(total.items())]
    palette = KIND_COLOURS + tuple(ACTION_COLOURS.values())
    domain = ids + [OTHER]
    colours = [palette[i % len(palette)] for i in range(len(ids))] + ["#dadce0"]
    data = {"bars": _binned(rows, "series", window)}
    bars = _bars("series", domain, colours, window, "traffic")
    return _top((bars + _releases(releases, data)).properties(width=WIDTH, height=200), data)


def clock(hours: list[dict]) -> dict:
    """Exchanges by day and hour of day (UTC): a person sleeps, a harvesting job does not."""
    cells: dict[tuple[str, int], int] = defaultdict(int)
    for r in hours:
        cells[(r["hour"].strftime("%Y-%m-%d"), r["hour"].hour)] += r["exchanges"]
    days = sorted({d for d, _ in cells})[-MAX_DAYS:]
    rows = [{"d": d, "h": h, "n": n} for (d, h), n in sorted(cells.items()) if d in days]
    chart = alt.Chart(alt.Data(name="cells")).mark_rect().encode(
        x=alt.X("h:O", title="hour of day (UTC)", scale=alt.Scale(domain=list(range(24))),
                axis=alt.Axis(labelAngle=0)),
        y=alt.Y("d:O", title=None, sort=days),
        color=alt.Color("n:Q", scale=alt.Scale(scheme="blues"), title="exchanges"),
        tooltip=[alt.Tooltip("d:O", title="day"), alt.Tooltip("h:O", title="hour (UTC)"),
                 alt.Tooltip("n:Q", title="exchanges", format=",")])
    return _top(chart.properties(width=WIDTH - 120, height=min(16 * len(days), 400)), {"cells": rows})


def graph(g: dict) -> dict:
    """The account graph from graph.account_graph (positions already in pixels)."""
    actions = [a for a in ACTION_COLOURS if any(n["group"] == a for n in g["nodes"] if n["type"] == "account")]
    kinds = sorted({n["group"] for n in g["nodes"] if n["type"] == "identifier"})
    colours = [ACTION_COLOURS[a] for a in actions] + [KIND_COLOURS[i % len(KIND_COLOURS)] for i in range(len(kinds))]
    x = alt.X("x:Q", axis=None, scale=alt.Scale(domain=[0, g["width"]]))
    y = alt.Y("y:Q", axis=None, scale=alt.Scale(domain=[0, g["height"]]))
    edges = alt.Chart(alt.Data(name="edges")).mark_rule(color="#9aa0a6", strokeWidth=0.8, opacity=0.6).encode(
        x=x, y=y, x2="x2:Q", y2="y2:Q",
        strokeDash=alt.StrokeDash("type:N", title="line", scale=alt.Scale(domain=["shares", "behaves alike"],
                                                                          range=[[1, 0], [3, 3]])),
        tooltip=[alt.Tooltip("link:N", title="link")])
    nodes = alt.Chart(alt.Data(name="nodes")).mark_point(filled=True, opacity=0.95, stroke="white",
                                                         strokeWidth=0.6).encode(
        x=x, y=y,
        color=alt.Color("group:N", title="account action / identifier",
                        scale=alt.Scale(domain=actions + kinds, range=colours)),
        shape=alt.Shape("type:N", title="node", scale=alt.Scale(domain=["account", "identifier"],
                                                                range=["circle", "diamond"])),
        size=alt.Size("size:Q", scale=None, legend=None),
        tooltip=[alt.Tooltip("id:N", title="id"), alt.Tooltip("group:N", title="action / kind"),
                 alt.Tooltip("detail:N", title="detail")])
    labels = alt.Chart(alt.Data(name="nodes")).transform_filter("datum.label").mark_text(
        align="left", dx=7, fontSize=10, color="#3c4043").encode(x=x, y=y, text="label:N")
    return _top((edges + nodes + labels).properties(width=g["width"], height=g["height"]),
                {"edges": g["edges"], "nodes": g["nodes"]})


def _top(chart: alt.TopLevelMixin, datasets: dict[str, list[dict]]) -> dict:
    """The spec, validated by Altair without its data (validating thousands of rows
    against the schema is slow and proves nothing); the rows go in as named datasets."""
    spec = chart.configure_view(stroke=None).configure_axis(labelFontSize=11, titleFontSize=11).to_dict()
    spec["datasets"] = datasets
    return spec
