"""A scan folder -> campaigns.json: every campaign with all of its evidence, in one document.

    {"format": "distillguard.campaigns/1",
     "scan": {... scan.json: version, scan_id, config_hash, input_fingerprint, key_id ...},
     "reason_codes": {code: meaning},
     "campaigns": [{campaign_id, rank, accounts, exchanges, risk, p_value, first_seen, last_seen,
                    reasons, link_pairs, indicators: [...], samples: [...],
                    members: [{account_id, action, action_rule, risk, score, percentile, exchanges,
                               first_seen, last_seen, reasons,
                               evidence: [{reason, kind, refs: [{ref, value}]}]}]}]}

Campaigns are ranked by risk, then size. Each campaign is assembled as JSON by the
engine and streamed to the file one at a time, so a campaign of 25,000 accounts and
millions of evidence rows never sits in Python objects. Text is JSON-escaped data.
"""

from __future__ import annotations

import json
from pathlib import Path

from distillguard.engine import Engine
from distillguard.files import atomic_text
from distillguard.verdicts.read import ScanDir, reason_texts

FORMAT = "distillguard.campaigns/1"
ISO = "'%Y-%m-%dT%H:%M:%S.%fZ'"  # the engine's session is UTC


def _iso(column: str) -> str:
    return f"strftime({column}, {ISO})"


def campaigns_sql(scan: ScanDir) -> str:
    """One row per campaign, in rank order: (rank, json)."""
    return f"""
WITH ranked AS (
  SELECT *, row_number() OVER (ORDER BY risk DESC, accounts DESC, campaign_id) AS rank FROM {scan.sql("campaigns")}
), refs AS (
  SELECT campaign_id, account_id, reason, kind, list({{'ref': ref, 'value': value}} ORDER BY ref, value) AS refs
  FROM {scan.sql("evidence")} GROUP BY ALL
), evidence AS (
  SELECT campaign_id, account_id, list({{'reason': reason, 'kind': kind, 'refs': refs}} ORDER BY reason, kind) AS evidence
  FROM refs GROUP BY ALL
), members AS (
  SELECT a.campaign_id, list({{
    'account_id': a.account_id, 'action': a.action, 'action_rule': a.action_rule, 'risk': a.risk,
    'score': a.score, 'percentile': a.percentile, 'exchanges': a.exchanges,
    'first_seen': {_iso('a.first_seen')}, 'last_seen': {_iso('a.last_seen')}, 'reasons': a.reasons,
    'evidence': coalesce(e.evidence, [])}} ORDER BY a.score DESC, a.account_id) AS members
  FROM {scan.sql("accounts")} a LEFT JOIN evidence e USING (campaign_id, account_id)
  WHERE a.flagged GROUP BY a.campaign_id
), indicators AS (
  SELECT campaign_id, list({{'kind': kind, 'value': value, 'keyed': keyed, 'accounts': accounts,
    'exchanges': exchanges, 'outside_accounts': outside_accounts,
    'first_seen': {_iso('first_seen')}, 'last_seen': {_iso('last_seen')}}}
    ORDER BY kind, accounts DESC, value) AS indicators
  FROM {scan.sql("indicators")} GROUP BY campaign_id
), samples AS (
  SELECT campaign_id, list({{'reason': reason, 'account_id': account_id, 'request_id': request_id,
    'ts': {_iso('ts')}, 'model': model, 'intent': intent, 'prompt': prompt, 'prompt_chars': prompt_chars}}
    ORDER BY reason NULLS LAST, intent DESC NULLS LAST, request_id) AS samples
  FROM {scan.sql("samples")} GROUP BY campaign_id
)
SELECT c.rank, to_json({{
  'campaign_id': c.campaign_id, 'rank': c.rank, 'accounts': c.accounts, 'exchanges': c.exchanges,
  'risk': c.risk, 'p_value': c.p_value, 'median_score': c.median_score,
  'first_seen': {_iso('c.first_seen')}, 'last_seen': {_iso('c.last_seen')},
  'reasons': c.reasons, 'link_pairs': c.link_pairs,
  'indicators': coalesce(i.indicators, []), 'samples': coalesce(s.samples, []), 'members': m.members}})::VARCHAR
FROM ranked c JOIN members m USING (campaign_id)
LEFT JOIN indicators i USING (campaign_id) LEFT JOIN samples s USING (campaign_id)
ORDER BY c.rank"""


def write_campaigns_json(scan_dir: str | Path, out: str | Path) -> int:
    """Write campaigns.json (atomically); returns the number of campaigns."""
    scan = ScanDir(scan_dir)
    head = {"format": FORMAT, "scan": scan.meta, "reason_codes": dict(sorted(reason_texts().items()))}
    n = 0
    with Engine.open() as engine, atomic_text(out) as f:
        f.write(json.dumps(head, ensure_ascii=False, sort_keys=True)[:-1] + ', "campaigns": [')
        for batch in engine.batches(campaigns_sql(scan), step="campaigns.json", batch_size=1):
            for document in batch.column(1).to_pylist():
                f.write(("\n" if n == 0 else ",\n") + document)
                n += 1
        f.write("\n]}\n")
    return n
