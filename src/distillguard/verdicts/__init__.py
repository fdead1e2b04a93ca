"""Verdicts: the scan that runs every stage and writes accounts, campaigns and evidence."""

from distillguard.verdicts.scan import ScanSummary, scan

__all__ = ["ScanSummary", "scan"]
