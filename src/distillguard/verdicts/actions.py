"""Verdicts -> the action for each account, from the reviewed ladder in actions.yaml.

The action is part of the verdict (accounts.parquet `action`, `action_rule`), so that
the report, actions.csv and the gateway all act on the same decision."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import yaml

from distillguard.engine import Engine, literal
from distillguard.verdicts.tables import MEMBER_MIN_PERCENTILE

ACTIONS = ("suspend", "challenge", "monitor")
NO_ACTION = "none"


@dataclass(frozen=True)
class ActionRule:
    code: str
    action: str
    when: str  # SQL over flagged, core, anchored, percentile, risk, community_flagged
    about: str


@functools.cache  # the shipped file, read once (the result is immutable)
def default_ladder() -> tuple[ActionRule, ...]:
    raw = yaml.safe_load(resources.files("distillguard.verdicts").joinpath("actions.yaml").read_text())
    ladder = tuple(ActionRule(**r) for r in raw["ladder"])
    for r in ladder:
        if r.action not in ACTIONS or not r.code.startswith(f"action.{r.action}."):
            raise ValueError(f"actions.yaml: {r.code}: action must be one of {ACTIONS} and the code "
                             f"action.<action>.<name>")
    return ladder


def build_actions(engine: Engine, ladder: tuple[ActionRule, ...]) -> None:
    action = " ".join(f"WHEN {r.when} THEN {literal(r.action)}" for r in ladder)
    rule = " ".join(f"WHEN {r.when} THEN {literal(r.code)}" for r in ladder)
    engine.execute(f"""
CREATE OR REPLACE TABLE verdict_accounts AS
WITH facts AS (
  SELECT v.*, coalesce(v.percentile >= {MEMBER_MIN_PERCENTILE}, false) AS core,
    coalesce(m.anchored, false) AS anchored, coalesce(k.flagged, false) AS community_flagged
  FROM verdict_accounts v LEFT JOIN campaign_members m USING (account_id)
  LEFT JOIN community_calibration k ON k.community_id = v.community_id
)
SELECT * EXCLUDE (core, anchored, community_flagged), CASE {action} ELSE {literal(NO_ACTION)} END AS action,
  CASE {rule} END AS action_rule
FROM facts""", step="verdicts: actions")
