"""Account pairs -> communities: the groups of accounts that one operator runs.

    communities = find_communities(edges)   # edges: src, dst, weight (summed evidence per pair)

One row per account that ends in a community of two or more accounts. Three steps,
each for a reason:

1. Pairs whose summed evidence is below `min_weight` are dropped: weak evidence
   (one shared university NAT address) never links accounts on its own.
2. Connected components, then inside each component a modularity step (networkit's
   PLM: Louvain with refinement) that splits off groups attached only loosely.
3. One edge never holds two knit groups together: a bridge whose two ends both lie
   on cycles is cut. This catches small groups that the modularity step keeps
   together (two triangles and an edge) and any badly connected community Louvain
   returns; communities are then split into their connected parts.

Why modularity, and why resolution 0.05. Within a component, merging groups A and B
raises modularity iff w(A, B) > gamma * S_A * S_B / (2 m), where S is the summed
weight at a group's nodes and m the component's total weight; for a small group B:
B stays attached iff more than about gamma of its evidence points outside it. The
alternative, the constant Potts model, compares w(A, B) with gamma * n_A * n_B, an
absolute density, and no single gamma serves both cases we must get right: the two
halves of a 20,000-account hydra with 3 spread pairs per account share 45,000 weight
over 10^8 account pairs (4.5e-4), a 50-account org and a 30-account cell sharing one
IP share 1.2 over 1,500 (8e-4). Relative to their strength the hydra halves share
9 % and the org and cell about 0.1 %. Measured on such hydras (card groups of 5-20 at
weight 3, spread pairs at 1.5), the largest community holds all 20,000 accounts up to
gamma 0.1 with 3 spread pairs per account, up to 0.05 with 1.5, up to 0.03 with 1;
theory says 0.185 for 3 (Louvain finds cuts sparser than the average one). Gamma 0.05
keeps hydras with 1.5 or more spread pairs per account whole and still splits off a
group that sends less than about 5 % of its evidence outward.

Modularity's resolution limit: with one null model for the whole graph, two groups of
a small component would be merged because some big unrelated component exists. So
every component is scaled to total weight 1 and gamma multiplied by the number of
components; the modularity of the whole is then the mean of the components' own, and
one PLM call optimizes each component as if it were alone.
"""

from __future__ import annotations

import hashlib

import networkit as nk
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

RESOLUTION = 0.05  # see the module docstring
ID_HEX = 12  # 48 bits of hash: collisions are negligible below millions of communities

SCHEMA = pa.schema([
    ("account_id", pa.string()),
    ("community_id", pa.string()),  # 'C' + hash of the community's smallest account_id
    ("component_id", pa.string()),  # 'G' + hash of the connected component's smallest account_id
    ("community_size", pa.int64()),
    ("internal_weight", pa.float64()),  # total weight of the pairs inside the community
    ("degree", pa.int64()),  # neighbours inside the community
])


def find_communities(edges: pa.Table, *, min_weight: float = 1.0, resolution: float = RESOLUTION,
                     seed: int = 0) -> pa.Table:
    """Cluster accounts linked by `edges` (src, dst, weight > 0; repeated pairs in
    either orientation are summed, self-pairs ignored, other columns ignored).

    `resolution` is modularity's gamma (module docstring); `seed` sets the order in
    which Louvain visits accounts. The same input in any row order gives the same
    table, ids included."""
    if not resolution >= 0:
        raise ValueError(f"resolution must be >= 0, got {resolution}")
    names, u, v, w = _pairs(edges, min_weight)
    if len(w) == 0:
        return SCHEMA.empty_table()
    n = len(names)
    threads = nk.getMaxNumberOfThreads()
    nk.setNumberOfThreads(1)  # parallel runs may visit nodes in a different order
    try:
        component = _components(_graph(u, v, n))
        community = _modularity(u, v, w, component, n, resolution, seed)
        community = _split_weak_links(u, v, community, n)
    finally:
        nk.setNumberOfThreads(threads)
    return _table(names, u, v, w, component, community)


def _pairs(edges: pa.Table, min_weight: float) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray]:
    """Sorted account names and the pairs as (u < v, summed weight >= min_weight).

    Node numbers follow the sorted names and pairs are sorted, so the graph and
    every result after it do not depend on the input's row order."""
    missing = {"src", "dst", "weight"} - set(edges.column_names)
    if missing:
        raise ValueError(f"edges lack columns: {', '.join(sorted(missing))}")
    src, dst = pc.cast(edges["src"], pa.string()), pc.cast(edges["dst"], pa.string())
    weight = pc.cast(edges["weight"], pa.float64()).to_numpy()
    if src.null_count or dst.null_count:
        raise ValueError("edges: src and dst must not be null")
    if not np.all(weight > 0):  # also rejects NaN and null (null reads as NaN)
        raise ValueError("edges: weight must be a positive number")
    if len(weight) == 0:
        return pa.array([], pa.string()), np.zeros(0, np.int64), np.zeros(0, np.int64), weight
    names = pc.unique(pa.chunked_array(src.chunks + dst.chunks, type=pa.string()))
    names = names.take(pc.sort_indices(names))
    n = len(names)
    a = pc.index_in(src, value_set=names).to_numpy()
    b = pc.index_in(dst, value_set=names).to_numpy()
    key = np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b)  # the pair in either orientation
    del a, b
    order = np.argsort(key)
    key, weight = key[order], weight[order]
    del order
    same = key[1:] == key[:-1]
    if same.any():
        # Weights of a repeated pair are added in ascending order so that the sum's
        # rounding does not depend on row order. Only repeated rows are sorted: a
        # full lexsort by (pair, weight) takes 4 s on 10M rows.
        rows = np.flatnonzero(np.r_[same, False] | np.r_[False, same])
        weight[rows] = weight[rows[np.lexsort((weight[rows], key[rows]))]]
    first = np.flatnonzero(np.r_[True, ~same])
    key, weight = key[first], np.add.reduceat(weight, first)
    u, v = key // n, key % n
    keep = (weight >= min_weight) & (u != v)
    u, v, weight = u[keep], v[keep], weight[keep]
    # Keep only accounts that still have a pair, renumbered in the same (sorted) order.
    used = np.zeros(n, dtype=bool)
    used[u] = used[v] = True
    number = np.cumsum(used) - 1
    return names.filter(pa.array(used)), number[u], number[v], weight


def _graph(u: np.ndarray, v: np.ndarray, n: int, weight: np.ndarray | None = None) -> nk.Graph:
    """Undirected networkit graph of the pairs (u < v, sorted by u), built from CSR:
    one C++ call, about 7x faster than GraphFromCoo, which inserts pair by pair."""
    indptr = np.r_[0, np.cumsum(np.bincount(u, minlength=n))]
    data = np.ones(len(u)) if weight is None else weight
    return nk.GraphFromCsr(sparse.csr_array((data, v, indptr), shape=(n, n)), directed=False,
                           weighted=weight is not None)


def _components(graph: nk.Graph) -> np.ndarray:
    """Connected component of every node, numbered 0..k-1."""
    cc = nk.components.ConnectedComponents(graph)
    cc.run()
    return _dense(cc.getPartition().getVector())


def _modularity(u: np.ndarray, v: np.ndarray, w: np.ndarray, component: np.ndarray, n: int,
                resolution: float, seed: int) -> np.ndarray:
    """Community of every node: modularity at `resolution` within each component.

    Nodes are visited in a seeded random order, not in account-name order: a result
    that changes with the seed is a borderline one."""
    component_weight = np.bincount(component[u], weights=w)
    # Every node has a pair, so every component has weight and counts in the mean.
    graph = _graph(u, v, n, w / component_weight[component[u]])  # a variable: PLM does not keep it alive
    nk.engineering.setSeed(seed, False)
    plm = nk.community.PLM(graph, refine=True, gamma=resolution * len(component_weight),
                           par="none randomized")
    plm.run()
    return _dense(plm.getPartition().getVector())


def _split_weak_links(u: np.ndarray, v: np.ndarray, community: np.ndarray, n: int) -> np.ndarray:
    """Cut bridges between knit groups inside each community; return connected parts.

    A bridge whose ends both lie on cycles joins two groups that each hold together
    by more than one edge, and one edge is not enough to call them one operation. A
    bridge to a pendant account or along a chain stays: one edge is enough to make a
    pair."""
    inside = community[u] == community[v]
    iu, iv = u[inside], v[inside]
    graph = _graph(iu, iv, n)
    bcc = nk.components.BiconnectedComponents(graph)
    bcc.run()
    # A biconnected component of two nodes is a bridge (a loop over components, not pairs).
    bridges = np.array([sorted(c) for c in bcc.getComponents() if len(c) == 2], dtype=np.int64).reshape(-1, 2)
    if len(bridges) == 0:
        return _components(graph)
    is_bridge = np.isin(iu * n + iv, bridges[:, 0] * n + bridges[:, 1])
    # Two-edge-connected parts: a node on a cycle is in a part of 3 or more.
    part = _components(_graph(iu[~is_bridge], iv[~is_bridge], n))
    on_cycle = np.bincount(part)[part] >= 3
    cut = is_bridge & on_cycle[iu] & on_cycle[iv]
    return _components(_graph(iu[~cut], iv[~cut], n))


def _dense(labels: list[int]) -> np.ndarray:
    """Labels renumbered 0..k-1 (networkit's subset ids may have gaps)."""
    return np.unique(np.asarray(labels, dtype=np.int64), return_inverse=True)[1].astype(np.int64)


def _table(names: pa.Array, u: np.ndarray, v: np.ndarray, w: np.ndarray, component: np.ndarray,
           community: np.ndarray) -> pa.Table:
    size = np.bincount(community)
    inside = community[u] == community[v]
    internal = np.bincount(community[u][inside], weights=w[inside], minlength=len(size))
    degree = np.bincount(u[inside], minlength=len(names)) + np.bincount(v[inside], minlength=len(names))
    member = np.flatnonzero(size[community] >= 2)
    table = pa.table({
        "account_id": names.take(member),
        "community_id": _group_ids("C", names, community).take(community[member]),
        "component_id": _group_ids("G", names, component).take(component[member]),
        "community_size": size[community[member]],
        "internal_weight": internal[community[member]],
        "degree": degree[member],
    }, schema=SCHEMA)
    return table.sort_by([("community_id", "ascending"), ("account_id", "ascending")])


def _group_ids(prefix: str, names: pa.Array, label: np.ndarray) -> pa.Array:
    """Stable id per label: a hash of the group's smallest account_id (names are
    sorted, so that is its first node). A loop over groups, not accounts or pairs."""
    _, first = np.unique(label, return_index=True)  # labels run 0..k-1 (_dense)
    return pa.array([prefix + hashlib.sha256(name.encode()).hexdigest()[:ID_HEX]
                     for name in names.take(first).to_pylist()], type=pa.string())


def find_communities_in_layers(strong: pa.Table, weak: pa.Table, *, min_weight: float = 1.0,
                               resolution: float = RESOLUTION, seed: int = 0) -> pa.Table:
    """Communities of the `strong` edges; then communities of the `weak` edges among
    the accounts the strong ones left in none (both tables as `find_communities` takes).

    Weak evidence that honest groups share too (wording) would, in one graph, let dense
    honest clusters swallow the groups that strong evidence isolates; here it only
    groups the accounts nothing stronger grouped."""
    first = find_communities(strong, min_weight=min_weight, resolution=resolution, seed=seed)
    grouped = first.column("account_id")
    keep = pc.and_(pc.invert(pc.is_in(weak.column("src"), value_set=grouped)),
                   pc.invert(pc.is_in(weak.column("dst"), value_set=grouped)))
    second = find_communities(weak.filter(keep), min_weight=min_weight, resolution=resolution, seed=seed)
    return pa.concat_tables([first, second])
