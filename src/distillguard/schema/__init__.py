"""The tables passed between stages, and their closed vocabularies. No logic."""

from distillguard.schema.contract import ACCOUNTS, EVENTS, LABELS, TABLES, Field, Table

__all__ = ["ACCOUNTS", "EVENTS", "LABELS", "TABLES", "Field", "Table"]
