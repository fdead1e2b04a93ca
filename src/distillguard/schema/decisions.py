"""The gateway's decision log (gateway/log.py) as a table the ingest reads back: one row
per decision. Each line of the log is a JSON object with these fields (and `v`, the
log's version); the batch scan counts, per account and campaign, what the gateway
refused (verdicts/tables.py)."""

from __future__ import annotations

from distillguard.schema.contract import Field, Table

# Strongest first, as gateway/policy.py orders them; the first three refuse the request.
DECISION_VALUES = ("block", "step_up", "throttle", "degrade", "mark", "allow")
REFUSING = ("block", "step_up", "throttle")

DECISIONS = Table(
    name="decisions",
    key="decision_id",
    meaning="One row per decision of the gateway on a live request.",
    fields=(
        Field("decision_id", "string", True, "Unique id of the decision.", "De-duplication key.", identifier=True),
        Field("ts", "timestamp", True, "When the request was decided on (UTC).", "`--until` cut-offs."),
        Field("account_id", "string", True, "The account that sent the request.", "Join key to verdicts.",
              identifier=True),
        Field("decision", "string", True, "block, step_up, throttle, degrade, mark or allow.",
              "What the gateway did.", allowed=DECISION_VALUES),
        Field("reasons", "string", False, "The reason codes (gateway/policy.yaml), space-separated.", "Why."),
        Field("request_id", "string", False, "The exchange's id, when the caller gave one.", "Join key to events.",
              identifier=True),
        Field("campaign", "string", False, "The campaign the account is in or linked to.", "Context.",
              identifier=True),
        Field("policy_version", "string", False, "Which policy file decided.", "Audit.", identifier=True),
        Field("verdict_version", "string", False, "Which published verdicts were in force.", "Audit.",
              identifier=True),
        Field("state", "string", False, "ok, or unavailable when the shared state could not be reached.",
              "Audit of outages.", allowed=("ok", "unavailable")),
    ),
)
