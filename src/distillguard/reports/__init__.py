"""Reports: a scan folder -> one self-contained HTML campaign report.

page.py builds the view model (plain dicts) from the scan's tables, graph.py lays out
each campaign's account graph, charts.py writes the Vega-Lite specs, render.py turns
it all into one HTML file behind a strict Content-Security-Policy.
"""

from distillguard.reports.render import render_report, write_report

__all__ = ["render_report", "write_report"]
