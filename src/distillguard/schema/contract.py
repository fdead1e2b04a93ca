"""The traffic contract (v1): the tables distillguard reads, as data.

Every other module (ingest validation, the simulator's writer, the schema docs)
is driven from these declarations, so the contract is written down exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

CONTRACT_VERSION = "1"

# Longest accepted value, in characters. Longer values are quarantined, never
# truncated: a cut prompt would silently change its template and intent.
MAX_ID_CHARS = 512
MAX_TEXT_CHARS = 4 * 1024 * 1024


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # string | text | int | float | bool | timestamp
    required: bool
    meaning: str
    used_for: str
    allowed: tuple[str, ...] | None = None  # closed vocabulary, lower-case
    minimum: float | None = None
    maximum: float | None = None
    identifier: bool = False  # trimmed; the longest accepted is MAX_ID_CHARS
    country: bool = False  # an ISO 3166 alpha-2 code, stored upper-case

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.kind]

    @property
    def max_chars(self) -> int | None:
        if self.kind == "string":
            return MAX_ID_CHARS if self.identifier else MAX_ID_CHARS * 4
        if self.kind == "text":
            return MAX_TEXT_CHARS
        return None


ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "text": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}

STATUSES = ("ok", "error", "rate_limited", "refused")
ACCOUNT_TYPES = ("free", "paid", "edu", "startup", "research", "enterprise")


@dataclass(frozen=True)
class Table:
    name: str
    key: str
    fields: tuple[Field, ...]
    meaning: str

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def required(self) -> list[Field]:
        return [f for f in self.fields if f.required]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    def arrow_schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(f.name, f.arrow_type, nullable=not f.required) for f in self.fields]
        )


EVENTS = Table(
    name="events",
    key="request_id",
    meaning="One row per API exchange: a request and its response.",
    fields=(
        Field("request_id", "string", True, "Unique id of the exchange; a repeated id is the same exchange delivered twice.",
              "De-duplication key; links evidence back to the exact exchange.", identifier=True),
        Field("ts", "timestamp", True, "When the request arrived (UTC).",
              "Time buckets, diurnal rhythm, inter-arrival regularity, co-action windows, model-pivot timing, `--until` cut-offs."),
        Field("account_id", "string", True, "The billing account that owns the API key.",
              "The unit that is profiled, linked into campaigns and given a verdict.", identifier=True),
        Field("model", "string", True, "The model requested.",
              "Model-pivot timing: how fast an account moves to a newly released model.", identifier=True),
        Field("prompt", "text", True, "Text of the last user message (its text parts joined).",
              "Distillation-intent signals, template signatures and near-duplicate sketches."),
        Field("api_key_id", "string", False, "The key used.", "Keys shared or rotated across accounts.", identifier=True),
        Field("conversation_id", "string", False, "Groups the turns of one conversation.",
              "Conversation depth; one conversation continued by several accounts links them.", identifier=True),
        Field("turn", "int", False, "0-based index of this exchange within its conversation.",
              "Conversation depth: harvesters mostly send single-turn requests.", minimum=0),
        Field("system", "text", False, "The system prompt.", "Template reuse and intent (judge and generator personas)."),
        Field("response", "text", False, "Text of the model's reply.", "Evidence samples; output length habits."),
        Field("input_tokens", "int", False, "Tokens in the request.", "Volume in tokens, not only requests.", minimum=0),
        Field("output_tokens", "int", False, "Tokens in the reply.", "Harvesters maximise output per request.", minimum=0),
        Field("reasoning_tokens", "int", False, "Tokens of hidden or summarized reasoning.",
              "Reasoning-trace harvesting.", minimum=0),
        Field("max_tokens", "int", False, "The cap the client asked for.", "max_tokens pinned at the model's cap.", minimum=0),
        Field("temperature", "float", False, "Sampling temperature.", "Parameter habits.", minimum=0.0, maximum=10.0),
        Field("logprobs", "bool", False, "Token log-probabilities were asked for.", "Logit harvesting for distillation."),
        Field("n", "int", False, "Samples asked for.", "n > 1 multiplies the outputs harvested per request.", minimum=1),
        Field("thinking", "bool", False, "Extended thinking / reasoning was asked for.", "Reasoning-trace harvesting."),
        Field("tools", "int", False, "Number of tool definitions sent.", "Agentic-trace harvesting.", minimum=0),
        Field("status", "string", False, "Outcome: ok, error, rate_limited, refused.",
              "Refusal and rate-limit pressure; only served exchanges count as harvested.", allowed=STATUSES),
        Field("client_ip", "string", False, "Client IP address.", "Shared infrastructure edges (weighted by rarity).", identifier=True),
        Field("asn", "int", False, "Autonomous system of client_ip.", "Datacenter vs residential; ASN rotation.", minimum=0),
        Field("ip_country", "string", False, "ISO 3166 alpha-2 country of client_ip.", "Consistency with billing country and time zone.", identifier=True, country=True),
        Field("user_agent", "string", False, "HTTP User-Agent.", "Shared client software.", identifier=True),
        Field("tls_fingerprint", "string", False, "TLS client fingerprint, e.g. a JA4 string.", "Shared client stack.", identifier=True),
        Field("client_timezone", "string", False, "IANA name or UTC offset the client reported.",
              "Time zone inconsistent with the account's billing country.", identifier=True),
    ),
)

ACCOUNTS = Table(
    name="accounts",
    key="account_id",
    meaning="One row per account.",
    fields=(
        Field("account_id", "string", True, "The account.", "Join key to events.", identifier=True),
        Field("created_at", "timestamp", True, "Signup time (UTC).", "Signup bursts; account age at first use."),
        Field("account_type", "string", False, "free, paid, edu, startup, research or enterprise.",
              "Context for the legitimate population it is compared with.", allowed=ACCOUNT_TYPES),
        Field("org_id", "string", False, "Organisation the account belongs to.",
              "Legitimate multi-account orgs share infrastructure by design.", identifier=True),
        Field("email_domain", "string", False, "Domain of the signup e-mail.", "Domain patterns; disposable domains.", identifier=True),
        Field("email_hash", "string", False, "Keyed hash of the normalized address.", "Shared or recycled addresses.", identifier=True),
        Field("payment_fingerprint", "string", False, "Hashed payment instrument.", "Cards shared across accounts.", identifier=True),
        Field("billing_country", "string", False, "ISO 3166 alpha-2 billing country.", "Consistency with IP country and time zone.", identifier=True, country=True),
        Field("signup_ip", "string", False, "IP address at signup.", "Shared signup infrastructure.", identifier=True),
        Field("signup_asn", "int", False, "Autonomous system of signup_ip.", "Signups from one datacenter or proxy pool.", minimum=0),
        Field("phone_hash", "string", False, "Hashed phone number.", "Shared verification phones.", identifier=True),
        Field("verified", "bool", False, "Identity verification passed.", "Context; verified accounts are costlier to fake."),
    ),
)

LABELS = Table(
    name="labels",
    key="account_id",
    meaning="Ground truth of a labelled world: one row per account.",
    fields=(
        Field("account_id", "string", True, "The account.", "Join key.", identifier=True),
        Field("campaign", "string", False, "Campaign the account belongs to; null for a legitimate account.",
              "Truth for precision, recall and campaign recovery.", identifier=True),
        Field("persona", "string", True, "What kind of user or attacker the account is.",
              "Per-persona false-positive rates (hard negatives singled out).", identifier=True),
    ),
)

TABLES = {t.name: t for t in (EVENTS, ACCOUNTS, LABELS)}
