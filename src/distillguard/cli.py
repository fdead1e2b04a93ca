"""The `distillguard` command line."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text
from rich.table import Table

from distillguard import __version__

app = typer.Typer(
    help="Find, link, stop and prove distillation campaigns in LLM API traffic.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False)
err = Console(stderr=True)


class _Amount(ProgressColumn):
    """done/total, as sizes for tasks counted in bytes."""

    def render(self, task) -> Text:
        total = "?" if task.total is None else task.total
        if task.fields.get("unit") == "bytes" and task.total is not None:
            return Text(f"{decimal(int(task.completed))}/{decimal(int(task.total))}")
        return Text(f"{int(task.completed):,}/{total if isinstance(total, str) else f'{int(total):,}'}")


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), _Amount(),
                    TimeElapsedColumn(), console=err, transient=False)


# Ingest reports these steps in counts; everything else (hashing, reading a table) in bytes.
_COUNTED_STEPS = {"writing", "committing"}


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


@app.command()
def simulate(
    preset: Annotated[str, typer.Option(help="World size: small, medium or large.")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed; a seed always gives the same world.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder to write events, accounts, labels and world.json.")] = Path("world"),
    corpora: Annotated[Optional[Path], typer.Option(help="Folder of real public prompts to mix in (optional).")] = None,
    evade: Annotated[Optional[list[str]], typer.Option(
        "--evade", metavar="TACTIC",
        help="Make every campaign stealthier with an evasion tactic (repeatable; applied in ladder order): "
             "no_shared_cards, paraphrased_prompts, human_timing, more_genuine_traffic, fewer_requests. "
             "See docs/simulator.md.")] = None,
) -> None:
    """Write a labelled world of honest users and hidden distillation campaigns."""
    world = _simulate_with_progress(preset, seed, out, corpora, evade or ())
    _print_world(world, out)
    if world["evasion"]:
        console.print("campaigns evade with: " + ", ".join(world["evasion"]))


def _simulate_with_progress(preset: str, seed: int, out: Path, corpora: Optional[Path], evasion=()) -> dict:
    from distillguard.simulate import simulate as build

    try:
        with _progress() as bar:
            task = bar.add_task(f"simulating {preset} world", total=None, unit="days")
            return build(preset, seed, out, corpora, progress=lambda d, n: bar.update(task, completed=d, total=n),
                         evasion=evasion)
    except ValueError as e:  # a bad preset, corpora path or evasion tactic: say so, no traceback
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(2) from None


def _print_world(world: dict, out: Path) -> None:
    t = world["totals"]
    console.print(f"[bold]{t['exchanges']:,}[/] exchanges from [bold]{t['accounts']:,}[/] accounts "
                  f"({world['window']['days']} days, new model {world['model_release']['model']} "
                  f"at {world['model_release']['at']}) written to {escape(str(out))}")
    table = Table("group", "accounts", "exchanges", "share", title="who is in the world")
    for name, c in world["campaigns"].items():
        table.add_row(f"[red]campaign[/] {name}", f"{c['accounts']:,}", f"{c['exchanges']:,}", f"{c['share_of_exchanges']:.1%}")
    for name, c in world["personas"].items():
        label = f"{name} [dim](hard negative)[/]" if c["hard_negative"] else name
        table.add_row(label, f"{c['accounts']:,}", f"{c['exchanges']:,}", f"{c['share_of_exchanges']:.1%}")
    console.print(table)


def _print_ingest(report) -> None:
    table = Table("table", "files", "rows read", "ingested", "duplicates", "quarantined", "not exchanges",
                  title="ingested")
    tables = [("events", report.events), ("accounts", report.accounts)]
    if report.decisions.files or report.decisions.skipped_files:
        tables.append(("decisions", report.decisions))
    for name, r in tables:
        table.add_row(name, f"{r.files:,}", f"{r.rows_read:,}", f"{r.rows_ingested:,}", f"{r.duplicates:,}",
                      f"{r.quarantined:,}", f"{sum(r.skipped_records.values()):,}")
    console.print(table)
    formats = sorted({f.format for f in report.events.file_reports if "/" in f.format})
    if formats:
        console.print("events read as: " + escape(", ".join(formats)))
    if report.events.skipped_records:
        console.print("log records that hold no exchange (counted, not stored): " + escape(", ".join(
            f"{code} {n:,}" for code, n in report.events.skipped_records.items())))
    reasons = [(name, code, n) for name, r in tables
               for code, n in sorted(r.quarantine_reasons.items(), key=lambda kv: -kv[1])]
    if reasons:
        q = Table("table", "reason", "rows", title="quarantined rows (kept in the workspace with file and line)")
        for name, code, n in reasons:
            q.add_row(name, escape(code), f"{n:,}")
        console.print(q)
    for name, r in tables:
        if r.skipped_files:
            console.print(f"{name}: {r.skipped_files:,} file(s) skipped, already ingested (same content)")
        if r.ignored_columns:
            console.print(f"{name}: ignored extra columns {escape(', '.join(r.ignored_columns))}")
    console.print(f"accounts seen in events without an accounts row (kept, scanned with unknown metadata): "
                  f"[bold]{report.unknown_accounts:,}[/]")
    totals = report.totals
    console.print("workspace now holds " + ", ".join(f"{v:,} {k}" for k, v in totals.items()))


_FORMAT = Annotated[str, typer.Option(
    "--format",
    help="What the events files are: the contract's columns, a provider's logs (otel, litellm, langfuse, helicone, "
         "openai, anthropic: docs/formats.md), or auto (each file's first record decides).")]
_FILL = Annotated[Optional[list[str]], typer.Option(
    help="FIELD=VALUE for an events field the logs leave empty, e.g. account_id=org-42 for a batch file. Repeatable.")]


@app.command()
def ingest(
    events: Annotated[Optional[list[str]], typer.Option(help="Events: a Parquet, JSON Lines or CSV file, a folder or a glob. Repeatable.")] = None,
    accounts: Annotated[Optional[list[str]], typer.Option(help="Accounts: a file, a folder or a glob. Repeatable.")] = None,
    decisions: Annotated[Optional[list[str]], typer.Option(help="The gateway's decision log: a file, a folder or a glob. Repeatable.")] = None,
    workspace: Annotated[Path, typer.Option(help="Workspace folder (DuckDB catalog plus Parquet).")] = Path(".distillguard"),
    log_format: _FORMAT = "contract",
    fill: _FILL = None,
    memory_limit: Annotated[Optional[str], typer.Option(help="Cap the engine's memory, e.g. 2GB; it spills to disk beyond it. Default: half the machine's.")] = None,
    threads: Annotated[Optional[int], typer.Option(help="Engine threads. Default: every core.")] = None,
) -> None:
    """Validate, normalize and store traffic; quarantine bad rows with their reasons.

    Reads the contract's own columns, or with --format the logs providers' stacks
    already write (docs/formats.md)."""
    from distillguard.ingest import IngestError
    from distillguard.ingest import ingest as run

    if not events and not accounts and not decisions:
        raise typer.BadParameter("give --events, --accounts and/or --decisions")
    # An engine error (e.g. an unusable --memory-limit) leaves the workspace as it was.
    with _errors_as_messages(IngestError):
        report = _ingest_with_progress(run, events or [], accounts or [], workspace, decisions=decisions or [],
                                       log_format=log_format,
                                       fills=_fills(fill), memory_limit=memory_limit, threads=threads)
    _print_ingest(report)


def _fills(fill: Optional[list[str]]) -> dict[str, str]:
    out = {}
    for item in fill or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--fill {item!r}: expected FIELD=VALUE, e.g. account_id=org-42")
        out[name.strip()] = value.strip()
    return out


def _ingest_with_progress(run, events, accounts, workspace, **engine_options):
    with _progress() as bar:
        tasks: dict[str, int] = {}

        def update(label: str, done: int, total: int) -> None:
            if label not in tasks:
                unit = "steps" if label in _COUNTED_STEPS else "bytes"
                tasks[label] = bar.add_task(label, total=total, unit=unit)
            bar.update(tasks[label], completed=done, total=total)

        return run(events=events, accounts=accounts, workspace=workspace, progress=update, **engine_options)


@app.command()
def scan(
    out: Annotated[Path, typer.Option(help="Folder for the verdicts (accounts, campaigns, evidence, indicators, ...) and scan.json.")],
    events: Annotated[Optional[list[str]], typer.Option(help="Events: a file, a folder or a glob (ingested into OUT/workspace first). Repeatable.")] = None,
    accounts: Annotated[Optional[list[str]], typer.Option(help="Accounts: a file, a folder or a glob. Repeatable.")] = None,
    workspace: Annotated[Optional[Path], typer.Option(help="Scan this workspace instead of --events/--accounts.")] = None,
    until: Annotated[Optional[str], typer.Option(help="Scan only events with ts <= this RFC 3339 time, as if scanning then.")] = None,
    memory_limit: Annotated[Optional[str], typer.Option(help="Cap the engine's memory, e.g. 2GB; it spills to disk beyond it. Default: 2.5GB.")] = None,
    threads: Annotated[Optional[int], typer.Option(help="Engine threads. Default: every core.")] = None,
    labels: Annotated[Optional[Path], typer.Option(help="labels.parquet of a labelled world: also print the campaigns found against the truth.")] = None,
    raw_ips: Annotated[bool, typer.Option("--raw-ips", help="Write IP addresses as they are, not as keyed hashes (to share proxy and datacenter addresses for blocking).")] = False,
    log_format: _FORMAT = "contract",
    fill: _FILL = None,
) -> None:
    """Find campaigns: score every account, link them, and write calibrated verdicts with evidence.

    Needs DISTILLGUARD_INDICATOR_KEY: customer identifiers leave a scan only as keyed hashes."""
    from distillguard.ingest import Workspace
    from distillguard.ingest import ingest as run

    if workspace is None and not events:
        raise typer.BadParameter("give --events (and --accounts), or --workspace")
    if workspace is not None and (events or accounts):
        raise typer.BadParameter("give either --workspace or --events/--accounts, not both")
    until_at = _parse_until(until)
    with _errors_as_messages():  # ingest errors are ValueErrors; a missing indicator key too
        if workspace is None:
            workspace = out / "workspace"
            _print_ingest(_ingest_with_progress(run, events or [], accounts or [], workspace, log_format=log_format,
                                                fills=_fills(fill), memory_limit=memory_limit, threads=threads))
        summary = _scan_with_progress(Workspace(workspace), out, until_at, memory_limit, threads, raw_ips=raw_ips)
    _print_scan(out, summary, labels)


def _parse_until(until: Optional[str]) -> Optional[str]:
    if until is None:
        return None
    from datetime import datetime, timezone

    try:
        at = datetime.fromisoformat(until.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"--until {until!r} is not an RFC 3339 time (e.g. 2026-03-05T00:00:00Z)") from None
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).isoformat()


def _scan_with_progress(ws, out: Path, until: Optional[str], memory_limit, threads, *, raw_ips: bool = False):
    from distillguard.verdicts import scan as run_scan
    from distillguard.verdicts.scan import STEPS

    with _progress() as bar:
        task = bar.add_task("scanning", total=len(STEPS), unit="steps")

        def update(step: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"scanning: {step}")

        return run_scan(ws.events_sql(), ws.accounts_sql(), out, input_fingerprint=ws.fingerprint(),
                        reasoning_sql=ws.reasoning_sql(), decisions_sql=ws.decisions_sql(), until=until,
                        raw_ips=raw_ips, progress=update, memory_limit=memory_limit, threads=threads)


def _print_scan(out: Path, summary, labels: Optional[Path]) -> None:
    import pyarrow.parquet as pq

    campaigns = pq.read_table(out / "campaigns.parquet").to_pylist()
    table = Table("campaign", "accounts", "exchanges", "risk", "first seen", "reasons",
                  title=f"campaigns found ({summary.campaigns}; {summary.flagged_accounts:,} accounts flagged "
                        f"of {summary.accounts:,})")
    for c in sorted(campaigns, key=lambda c: -c["accounts"]):
        table.add_row(escape(c["campaign_id"]), f"{c['accounts']:,}", f"{c['exchanges']:,}", f"{c['risk']:.4f}",
                      c["first_seen"].strftime("%Y-%m-%d %H:%M"), escape(", ".join(c["reasons"][:4])))
    console.print(table)
    console.print(f"{summary.exchanges:,} exchanges scanned"
                  + (f" up to {summary.until}" if summary.until else "")
                  + f"; accounts without an accounts row: {summary.unknown_accounts:,}; "
                  f"verdicts in {escape(str(out))}")
    if labels is not None:
        _print_truth(out, labels)


def _print_truth(out: Path, labels: Path) -> None:
    from distillguard.evaluate import compare

    result = compare(out, labels)
    table = Table("true campaign", "accounts", "flagged", "recall", "found as", title="against the truth")
    for name, c in result["campaigns"].items():
        table.add_row(escape(name), f"{c['accounts']:,}", f"{c['flagged']:,}", f"{c['recall']:.1%}",
                      escape(", ".join(c["found_as"][:3]) + (" ..." if len(c["found_as"]) > 3 else "")))
    console.print(table)
    fp = Table("legitimate persona", "accounts", "flagged", "rate", title="false positives")
    for name, p in result["personas"].items():
        fp.add_row(escape(name), f"{p['accounts']:,}", f"{p['flagged']:,}", f"{p['rate']:.2%}")
    console.print(fp)
    a = result["accounts"]
    console.print(f"account precision [bold]{a['precision']:.4f}[/], recall [bold]{a['recall']:.4f}[/], "
                  f"false-positive rate [bold]{a['fpr']:.4%}[/] of {a['legitimate']:,} legitimate accounts")


@app.command()
def demo(
    preset: Annotated[str, typer.Option(help="World size.")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    workdir: Annotated[Path, typer.Option(help="Folder for the world and the workspace.")] = Path("demo"),
    corpora: Annotated[Optional[Path], typer.Option(help="Folder of real public prompts to mix in (optional).")] = None,
) -> None:
    """The main job on the embedded default: simulate a world, ingest it, scan it, compare with the truth."""
    import os
    import secrets

    from distillguard.verdicts.keyed import KEY_ENV

    if not os.environ.get(KEY_ENV):
        # A demo's outputs are thrown away: a fresh key is enough. Production sets its own.
        os.environ[KEY_ENV] = secrets.token_hex(32)
        console.print(f"{KEY_ENV} is not set: the demo hashes customer identifiers with a throwaway key")
    from distillguard.ingest import ingest as run
    from distillguard.simulate.redelivery import write_redelivery

    world_dir = workdir / "world"
    _print_world(_simulate_with_progress(preset, seed, world_dir, corpora), world_dir)
    # Real pipelines deliver some logs twice and damage a few lines on the way.
    late = write_redelivery(world_dir / "events.parquet", workdir / "redelivered", seed=seed)
    console.print(f"also ingesting {escape(str(late))}: a re-delivered log with duplicates and damaged lines")
    report = _ingest_with_progress(run, [str(world_dir / "events.parquet"), str(late)],
                                   [str(world_dir / "accounts.parquet")], workdir / "workspace")
    _print_ingest(report)
    from distillguard.ingest import Workspace

    summary = _scan_with_progress(Workspace(workdir / "workspace"), workdir / "scan", None, None, None)
    _print_scan(workdir / "scan", summary, world_dir / "labels.parquet")
    from distillguard.reports import write_report

    write_report(workdir / "scan", workdir / "report.html")
    console.print(f"the analyst's report: {escape(str(workdir / 'report.html'))} (distillguard report)")


@app.command()
def bench(
    suite: Annotated[str, typer.Option(help="quick (CI gate, ~3 min), standard (every documented figure, <30 min) or scale (up to 5M exchanges).")] = "standard",
    corpora: Annotated[Optional[Path], typer.Option(help="Folder of real public prompts: adds a world whose prompts mix them in.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for worlds, results.json, charts and report.md (reused on a re-run).")] = Path("bench-out"),
    docs: Annotated[Optional[Path], typer.Option(help="Markdown file whose section for this suite is replaced with the results.")] = Path("docs/benchmarks.md"),
    no_docs: Annotated[bool, typer.Option("--no-docs", help="Leave the docs alone.")] = False,
    method: Annotated[Optional[list[str]], typer.Option(help="Run only these methods (repeatable). Default: all.")] = None,
) -> None:
    """Measure quality, earliness, robustness and speed of the scanner and the baselines on the same worlds."""
    import shlex

    from distillguard.bench import report
    from distillguard.bench.run import Bench

    try:
        runner = Bench(suite, out, corpora, method)
    except ValueError as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(2) from None
    with _progress() as bar:
        task = bar.add_task(f"bench {suite}", total=runner.total, unit="runs")
        runner.progress = lambda step, done, total: bar.update(task, completed=done, total=total,
                                                               description=f"bench {suite}: {step}")
        results = runner.run()
        bar.update(task, completed=runner.total)
    command = "distillguard bench --suite " + suite + (f" --corpora {shlex.quote(str(corpora))}" if corpora else "")
    written = report.write(results, out, command, None if no_docs else docs)
    _print_bench(results)
    charts = sum(p.suffix in (".svg", ".png") for p in written)
    console.print(f"wrote results.json, report.md and {charts} charts to {escape(str(out))}"
                  + ("" if no_docs else f"; updated {escape(str(docs))}"))
    failed = [g for g in results["gates"] if not g["passed"]]
    for g in failed:
        err.print(f"[red]gate failed:[/] {escape(g['method'])} {escape(g['figure'])} = {g['value']} "
                  f"(bound: {', '.join(f'{k} {g[k]}' for k in ('min', 'max') if k in g)})")
    if failed:
        raise typer.Exit(1)


def _print_bench(results: dict) -> None:
    for name, world in results["worlds"].items():
        table = Table("method", "precision", "recall", "recall at 1% FPR", "ARI", "seconds",
                      title=f"{escape(name)}: {world['exchanges']:,} exchanges")
        for m, r in world["methods"].items():
            table.add_row(escape(m) + (" (sample)" if r["sampled"] else ""), f"{r['default']['precision']:.4f}",
                          f"{r['default']['recall']:.4f}", f"{r['at_fpr_0.01']['recall']:.4f}",
                          f"{r['adjusted_rand']:.3f}", f"{r['seconds']:.1f}")
        console.print(table)
    console.print(f"bench {escape(results['suite'])} took {results['seconds'] / 60:.1f} minutes")


@app.command()
def report(
    scan_dir: Annotated[Path, typer.Argument(help="A scan's --out folder.")],
    out: Annotated[Path, typer.Option(help="The HTML file to write (self-contained: it fetches nothing).")] = Path("report.html"),
) -> None:
    """An analyst's report of a scan: campaigns ranked, each with its timeline, account graph, reasons, samples,
    indicators and actions."""
    from distillguard.reports import write_report

    with _errors_as_messages():
        with _progress() as bar:
            task = bar.add_task("report", total=None)
            write_report(scan_dir, out)
            bar.update(task, total=1, completed=1)
    console.print(f"wrote {escape(str(out))}")


export_app = typer.Typer(help="Machine-readable and shareable exports of a scan.", no_args_is_help=True)
app.add_typer(export_app, name="export")
_SCAN_DIR = Annotated[Path, typer.Argument(help="A scan's --out folder.")]
_PRODUCER = Annotated[str, typer.Option(envvar="DISTILLGUARD_PRODUCER",
                                        help="Your organisation's name, as the export's author (env DISTILLGUARD_PRODUCER).")]
_TLP = Annotated[Optional[str], typer.Option(help="Traffic Light Protocol marking: clear, green, amber or red. Default: exports/sharing.yaml (amber).")]


@export_app.command("campaigns")
def export_campaigns(scan_dir: _SCAN_DIR,
                     out: Annotated[Path, typer.Option(help="JSON file to write.")] = Path("campaigns.json")) -> None:
    """campaigns.json: every campaign with its members, evidence, indicators and samples."""
    from distillguard.exports.campaigns_json import write_campaigns_json

    with _errors_as_messages():
        n = write_campaigns_json(scan_dir, out)
    console.print(f"wrote {n:,} campaigns to {escape(str(out))}")


@export_app.command("actions")
def export_actions(scan_dir: _SCAN_DIR,
                   out: Annotated[Path, typer.Option(help="CSV file to write.")] = Path("actions.csv")) -> None:
    """actions.csv: the accounts to act on (account, action, rule, reasons), safe to open in a spreadsheet."""
    from distillguard.exports.actions_csv import write_actions_csv

    with _errors_as_messages():
        counts = write_actions_csv(scan_dir, out)
    _print_written(out, counts)


@export_app.command("stix")
def export_stix(scan_dir: _SCAN_DIR, producer: _PRODUCER, tlp: _TLP = None,
                out: Annotated[Path, typer.Option(help="STIX 2.1 bundle (JSON) to write.")] = Path("campaigns.stix.json")) -> None:
    """A STIX 2.1 bundle, validated, mapped to MITRE ATLAS AML.T0024.002; customer identifiers only as keyed hashes."""
    from distillguard.exports.stix import write_stix

    with _errors_as_messages():
        counts = write_stix(scan_dir, out, producer=producer, tlp=tlp)
    _print_written(out, counts)


@export_app.command("misp")
def export_misp(scan_dir: _SCAN_DIR, producer: _PRODUCER, tlp: _TLP = None,
                out: Annotated[Path, typer.Option(help="MISP event (JSON) to write.")] = Path("campaigns.misp.json")) -> None:
    """A MISP event with the campaigns' indicators; customer identifiers only as keyed hashes."""
    from distillguard.exports.misp import write_misp

    with _errors_as_messages():
        counts = write_misp(scan_dir, out, producer=producer, tlp=tlp)
    _print_written(out, counts)


def _print_written(out: Path, counts: dict[str, int]) -> None:
    console.print(f"wrote {escape(str(out))}: " + ", ".join(f"{n:,} {escape(str(k))}" for k, n in counts.items()))


@contextlib.contextmanager
def _errors_as_messages(*expected: type[Exception]):
    """Expected failures (bad input, a folder that is not a scan, an invalid export, an engine
    step that failed) as one line and exit code 2, never a traceback."""
    from distillguard.engine import EngineError

    try:
        yield
    except expected or (ValueError, OSError) as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        raise typer.Exit(2) from None
    except EngineError as e:
        err.print(f"[red]error:[/] {escape(e.step)}: {escape(str(e.cause))}")
        raise typer.Exit(2) from None


@app.command()
def schema() -> None:
    """Print the traffic contract as Markdown (the source of docs/schema.md)."""
    from distillguard.schema.docs import render

    typer.echo(render())


@app.command()
def formats() -> None:
    """Print the log formats `ingest --format` reads, field by field, as Markdown (the source of docs/formats.md)."""
    from distillguard.ingest.formats.docs import render

    typer.echo(render(), nl=False)



_REDIS_URL = Annotated[Optional[str], typer.Option(
    "--redis", envvar="DISTILLGUARD_GATEWAY_REDIS", metavar="URL",
    help="Redis URL, e.g. redis://127.0.0.1:6379/0; a password is better kept in the env var than in argv.")]
_PREFIX = Annotated[str, typer.Option(envvar="DISTILLGUARD_GATEWAY_PREFIX",
                                      help="Key prefix in Redis; keep the {braces}: one hash slot on a cluster.")]


@app.command()
def publish(
    scan_dir: _SCAN_DIR,
    to: Annotated[Optional[Path], typer.Option(help="Folder store the gateway reads (serve gateway --verdicts).")] = None,
    redis: _REDIS_URL = None,
    prefix: _PREFIX = "{dg}:",
) -> None:
    """Publish a scan's verdicts for the gateway, as a new version, into a folder store and/or Redis."""
    if to is None and redis is None:
        err.print("[red]error:[/] give --to FOLDER, --redis URL or both")
        raise typer.Exit(2)
    from redis import RedisError

    from distillguard.gateway.verdicts import publish as publish_folder, publish_redis

    with _errors_as_messages(ValueError, OSError, RedisError):
        if to is not None:
            version = publish_folder(scan_dir, to)
            console.print(f"published verdicts {escape(version)} to {escape(str(to))}")
        if redis is not None:
            import redis as redis_py

            client = redis_py.Redis.from_url(redis, socket_timeout=10, socket_connect_timeout=5)
            try:
                version = publish_redis(scan_dir, client, prefix)
            finally:
                client.close()
            console.print(f"published verdicts {escape(version)} to Redis under {escape(prefix)}")


serve_app = typer.Typer(help="Run a distillguard service.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")


@serve_app.command("gateway")
def serve_gateway(
    verdicts: Annotated[Optional[Path], typer.Option(
        envvar="DISTILLGUARD_GATEWAY_VERDICTS",
        help="Folder store of published verdicts (distillguard publish --to), read in the process.")] = None,
    redis: _REDIS_URL = None,
    prefix: _PREFIX = "{dg}:",
    policy: Annotated[Optional[Path], typer.Option(envvar="DISTILLGUARD_GATEWAY_POLICY",
                                                   help="Policy file (default: the shipped policy.yaml).")] = None,
    fail: Annotated[str, typer.Option(envvar="DISTILLGUARD_GATEWAY_FAIL",
                                      help="While the state is unavailable: open (allow, alert) or closed (throttle).")] = "open",
    log_dir: Annotated[Optional[Path], typer.Option(envvar="DISTILLGUARD_GATEWAY_LOG_DIR",
                                                    help="Folder for the decision log (JSON Lines).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8787,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (each with its own in-process state: "
                                                     "use --redis to share windows across them).")] = 1,
) -> None:
    """The decision gateway over HTTP: POST /decide, GET /health, GET /metrics. Callers send
    Authorization: Bearer $DISTILLGUARD_GATEWAY_TOKEN."""
    import os

    import uvicorn

    from distillguard.gateway.decide import Gateway
    from distillguard.gateway.service import ENV, create_app, gateway_token, serve_workers

    if verdicts is not None and redis is not None:
        err.print("[red]error:[/] give --verdicts or --redis, not both (publish --redis puts the verdicts in Redis)")
        raise typer.Exit(2)
    settings = {"verdicts": verdicts, "redis": redis, "prefix": prefix, "policy": policy, "fail": fail,
                "log_dir": log_dir}
    with _errors_as_messages():
        token = gateway_token()
        if verdicts is not None and not verdicts.is_dir():
            raise ValueError(f"{verdicts}: no such folder (distillguard publish SCAN --to {verdicts} makes it)")
        # Built here whatever the workers, so that a bad setting is one line now, not a worker's traceback.
        gateway = Gateway.open(verdicts=verdicts, redis_url=redis, policy=policy, fail=fail,
                               log_dir=log_dir if workers == 1 else None, prefix=prefix)
    state, version = gateway.state.probe()
    err.print(f"gateway on http://{escape(host)}:{port}: verdicts {escape(version or 'none published')}, "
              f"policy {gateway.policy.version}, state {state}, fail {fail}, {workers} worker(s)")
    # No access log: the decision log records every decision, and a line per request costs
    # more than the decision at thousands a second.
    if workers == 1:
        uvicorn.run(create_app(gateway, token=token), host=host, port=port, access_log=False)
        return
    gateway.close()
    for name, value in settings.items():  # what each worker's app_from_env reads
        if value is None:
            os.environ.pop(ENV[name], None)
        else:
            os.environ[ENV[name]] = str(value)
    raise typer.Exit(serve_workers(host, port, workers))


if __name__ == "__main__":  # pragma: no cover
    app()
