"""A campaign's account graph for the report: which accounts share which identifiers,
and which accounts are linked by behaviour (co-action, synchrony, wording).

Nodes are the highest-scoring members (capped, so a campaign of thousands stays
readable) and the identifiers two or more of them share; the layout is networkit's
MaxentStress from a fixed start and seed on one thread, so the same evidence always
gives the same picture.
"""

from __future__ import annotations

import math
from collections import defaultdict

import networkit as nk
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from distillguard.verdicts.keyed import PREFIX

MAX_ACCOUNTS = 150
MAX_IDENTIFIERS = 60       # the most shared values; a proxy pool can share thousands
LINKS_PER_ACCOUNT = 3      # each account's strongest behavioural links
LABELLED_IDENTIFIERS = 8   # identifiers named on the chart (the others in their tooltip)
SMALL_GRAPH = 24           # ...and every node when the graph is this small
WIDTH, HEIGHT, MARGIN = 760, 440, 24
LAYOUT_SEED = 1


def account_graph(members: list[dict], evidence: pa.Table) -> dict:
    """members: the campaign's accounts.parquet rows; evidence: its evidence.parquet rows."""
    drawn = sorted(members, key=lambda m: (-m["score"], m["account_id"]))[:MAX_ACCOUNTS]
    index = {m["account_id"]: i for i, m in enumerate(drawn)}
    mine = evidence.filter(pc.is_in(evidence.column("account_id"), pa.array(list(index), pa.string())))

    holders: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in _kind(mine, "identifier").select(["reason", "ref", "account_id"]).to_pylist():
        holders[(row["reason"], row["ref"])].add(row["account_id"])
    shared = sorted(((key, sorted(accounts)) for key, accounts in holders.items() if len(accounts) >= 2),
                    key=lambda x: (-len(x[1]), x[0]))
    identifiers = shared[:MAX_IDENTIFIERS]

    # Evidence lists a behavioural link from both ends; one end (account < other) is enough.
    links = _kind(mine, "account")
    links = links.filter(pc.and_(pc.is_in(links.column("ref"), pa.array(list(index), pa.string())),
                                 pc.less(links.column("account_id"), links.column("ref"))))
    pairs: dict[tuple[str, str], dict] = {}
    for row in links.select(["account_id", "ref", "reason", "value"]).to_pylist():
        link = pairs.setdefault((row["account_id"], row["ref"]), {"weight": 0.0, "reasons": set()})
        link["weight"] += row["value"] or 0.0
        link["reasons"].add(row["reason"])
    strongest: dict[str, list] = defaultdict(list)
    for (a, b), link in pairs.items():
        strongest[a].append((-link["weight"], b, (a, b)))
        strongest[b].append((-link["weight"], a, (a, b)))
    kept = sorted({p for links in strongest.values() for _, _, p in sorted(links)[:LINKS_PER_ACCOUNT]})

    nodes = [{"id": m["account_id"], "type": "account", "group": m["action"], "label": "", "size": 60,
              "detail": f"{m['exchanges']:,} exchanges, score percentile {m['percentile']:.4f}"} for m in drawn]
    edges: list[tuple[int, int, str, str]] = []
    for rank, ((reason, value), accounts) in enumerate(identifiers):
        kind = reason.removeprefix("link.")
        nodes.append({"id": value, "type": "identifier", "group": kind, "size": 130,
                      "label": short(value) if rank < LABELLED_IDENTIFIERS else "",
                      "detail": f"{kind} shared by {len(accounts)} drawn accounts"})
        edges += [(len(nodes) - 1, index[a], "shares", reason) for a in accounts]
    edges += [(index[a], index[b], "behaves alike", ", ".join(sorted(pairs[(a, b)]["reasons"]))) for a, b in kept]

    if len(nodes) <= SMALL_GRAPH:
        for node in nodes:
            node["label"] = short(node["id"])
    xy = _layout(len(nodes), [(s, t) for s, t, _, _ in edges])
    for node, (x, y) in zip(nodes, xy):
        node["x"], node["y"] = x, y
    return {
        "nodes": nodes,
        "edges": [{"x": xy[s][0], "y": xy[s][1], "x2": xy[t][0], "y2": xy[t][1], "type": type_, "link": what}
                  for s, t, type_, what in edges],
        "width": WIDTH, "height": HEIGHT,
        "note": {"accounts": len(members), "drawn": len(drawn), "left_out": len(members) - len(drawn),
                 "identifiers": len(shared), "identifiers_drawn": len(identifiers),
                 "pair_links": len(pairs), "pair_links_drawn": len(kept), "links_per_account": LINKS_PER_ACCOUNT},
    }


def _kind(table: pa.Table, kind: str) -> pa.Table:
    return table.filter(pc.equal(table.column("kind"), kind))


def short(value: str, keep: int = 22) -> str:
    """A value short enough to label a node: a keyed hash by its first hex digits."""
    if value.startswith(PREFIX):
        return "hmac:" + value[len(PREFIX):][:8] + "\u2026"
    return value if len(value) <= keep else value[:keep] + "\u2026"


def _layout(n: int, edges: list[tuple[int, int]]) -> list[tuple[float, float]]:
    """Stress layout in pixels. MaxentStress needs a connected graph: each component is
    tied to one hidden hub node, which puts separate components around a common centre."""
    if n <= 1:
        return [(WIDTH / 2, HEIGHT / 2)] * n
    rows = [s for s, _ in edges]
    cols = [t for _, t in edges]
    k, label = connected_components(coo_matrix((np.ones(len(edges)), (rows, cols)), shape=(n, n)), directed=False)
    hub = n if k > 1 else None
    g = nk.Graph(n + (hub is not None), weighted=True)
    for s, t in sorted(set((min(a, b), max(a, b)) for a, b in edges)):
        g.addEdge(s, t, 1.0)
    if hub is not None:
        for c in range(k):
            g.addEdge(hub, int(np.flatnonzero(label == c)[0]), 2.0)
    # A fixed start (a circle in node order), a fixed seed (MaxentStress samples too) and
    # one thread, so that floating-point sums run in the same order every time.
    size = g.numberOfNodes()
    start = [(math.cos(2 * math.pi * i / size), math.sin(2 * math.pi * i / size)) for i in range(size)]
    threads = nk.getMaxNumberOfThreads()
    nk.setNumberOfThreads(1)
    nk.engineering.setSeed(LAYOUT_SEED, False)
    try:
        stress = nk.viz.MaxentStress(g, 2, 3, start, 1e-5,
                                     nk.viz.LinearSolverType.CONJUGATE_GRADIENT_DIAGONAL_PRECONDITIONER)
        stress.run()
        xy = np.array(stress.getCoordinates(), dtype=float)[:n]
    finally:
        nk.setNumberOfThreads(threads)
    return _fit(xy)


def _fit(xy: np.ndarray) -> list[tuple[float, float]]:
    """Scale into the chart, keeping the aspect ratio; rounded to a tenth of a pixel."""
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    scale = min((WIDTH - 2 * MARGIN) / span[0], (HEIGHT - 2 * MARGIN) / span[1])
    centre = (lo + hi) / 2
    out = (xy - centre) * scale + np.array([WIDTH / 2, HEIGHT / 2])
    return [(round(float(x), 1), round(float(y), 1)) for x, y in out]
