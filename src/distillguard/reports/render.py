"""The view model -> one self-contained HTML file.

Nothing is fetched when the page is viewed: the Vega, Vega-Lite and Vega-Embed code
comes inlined from vl-convert's bundle, the charts' specs and data as JSON in the page.
Everything from the scan is attacker-controllable text (prompts, user agents, account
ids): the template autoescapes it, the chart JSON is escaped so that it cannot end its
<script> element, and a Content-Security-Policy allows only this page's own scripts
and style, by hash, so that even a bug in escaping runs nothing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
from datetime import datetime
from importlib import resources
from pathlib import Path

import altair as alt
import jinja2
import vl_convert
from markupsafe import Markup

from distillguard.files import atomic_text
from distillguard.reports.graph import short
from distillguard.reports.page import REFS_PER_REASON, build_page


def render_report(scan_dir: str | Path) -> str:
    """The report of `scan_dir` as one HTML document."""
    page = build_page(scan_dir)
    css, runner, vega = _asset("report.css"), _asset("report.js"), vega_bundle()
    return _template().render(
        **page, refs_per_reason=REFS_PER_REASON,
        csp=content_security_policy(scripts=(vega, runner), styles=(css,)),
        css=_inline(css, "style"), vega=_inline(vega, "script"), runner=_inline(runner, "script"),
        charts_json=Markup(script_json(page["charts"])),
    )


def write_report(scan_dir: str | Path, out: str | Path) -> Path:
    """Render the report of `scan_dir` into `out`, atomically (a reader never sees half a file)."""
    html = render_report(scan_dir)
    with atomic_text(out) as f:
        f.write(html)
    return Path(out)


def content_security_policy(*, scripts: tuple[str, ...], styles: tuple[str, ...]) -> str:
    return "; ".join((
        "default-src 'none'",
        "script-src " + " ".join(_sha256(s) for s in scripts),
        "style-src " + " ".join(_sha256(s) for s in styles),
        "img-src data:",
        "base-uri 'none'",
        "form-action 'none'",
    ))


def script_json(value: object) -> str:
    """JSON that is inert inside <script>: no '<', '>' or '&' survives to end the element
    or open a comment; JSON.parse reads the escapes back as the same characters."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@functools.cache
def vega_bundle() -> str:
    """Vega, Vega-Lite (the version Altair writes) and Vega-Embed as one script."""
    version = alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0]
    return vl_convert.javascript_bundle(vl_version=version)


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def _inline(text: str, element: str) -> Markup:
    """Trusted code put in the page as it is; refused if it could end its element early."""
    lowered = text.lower()
    if f"</{element}" in lowered or "<!--" in lowered:
        raise ValueError(f"cannot inline into <{element}>: the text contains '</{element}' or '<!--'")
    return Markup(text)


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


@functools.cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    env.filters |= {"num": _num, "when": _when, "risk": _risk, "pvalue": _pvalue, "percentile": _percentile,
                    "metric": _metric, "short": short, "iso": _iso}
    return env.from_string(_asset("report.html.j2"))


# -- formats ----------------------------------------------------------------------------
def _num(n: float | int | None) -> str:
    if n is None:
        return ""
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.2f}"


def _when(t: datetime | None) -> str:
    return "" if t is None else t.strftime("%Y-%m-%d %H:%M")


def _iso(text: str) -> str:
    """An ISO time from scan.json, to the second."""
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M:%S")


def _risk(r: float) -> str:
    # Risk is 1 - p: shown with as many nines as the p-value earns, up to six.
    return f"{r:.6f}".rstrip("0").rstrip(".") if r < 1 else "1"


def _pvalue(p: float) -> str:
    if p == 0:
        return "< 1e-300"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def _percentile(q: float) -> str:
    # The top of the population is where campaigns live: show enough digits to tell 99.9% from 99.99%.
    digits = 1 if q < 0.99 else min(4, max(1, math.ceil(-math.log10(max(1 - q, 1e-6))) - 1))
    return f"{q * 100:.{digits}f}%"


def _metric(v: float | None) -> str:
    return "" if v is None else f"{v:.3g}"
