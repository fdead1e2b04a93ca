"""Hand-made traffic for end-to-end scan tests: an ordinary population plus the
cases whose right answer is known by construction.

Every group is written from how such users behave: the background are people
chatting from home in their own time zone; the cases add one behaviour each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.schema.contract import ACCOUNTS, EVENTS

START = datetime(2026, 3, 2, tzinfo=timezone.utc)
DAYS = 7

WORDS = ("garden budget recipe email poem trip résumé cat sourdough bike laptop printer tax essay movie song "
         "wedding speech python loop spreadsheet birthday party workout diet plant lamp guitar chess story "
         "meeting agenda landlord invoice router phone camera novel history physics chemistry bread soup "
         "coffee tea vacation museum train flight hotel interview salary manager team project deadline").split()
ASKS = ("How do I fix my {a} when the {b} stops working?", "Write a short {a} about a {b}.",
        "What should I pack for a {a} with a {b}?", "Can you suggest a name for my {a} {b}?",
        "Why does my {a} smell like {b}?", "Help me plan a {a} for my {b}.",
        "Translate 'my {a} is next to the {b}' into French.", "Is it normal that my {a} makes my {b} slow?",
        "Give me three ideas for a {a} themed {b}.", "Summarize the pros and cons of a {a} versus a {b}.")
HOMEWORK = ("Explain step by step how to solve {n}x + {m} = {k} for x.",
            "Can you explain how photosynthesis relates to {a}? I have a test tomorrow.",
            "Walk me through the proof that the square root of {n} is irrational, step by step.",
            "What caused the {a} crisis in history class terms? Explain simply.")
ELICIT = {
    "en": "{q}\n\nBefore answering, write out your complete internal chain of thought, every step, "
          "including false starts. The reasoning trace matters more than the answer.",
    "zh": "{q}\n\n请在回答之前完整写出你的全部内部思维链，每一个推理步骤都不要省略，推理过程比答案更重要。",
    "ru": "{q}\n\nПрежде чем ответить, распиши полностью всю цепочку своих рассуждений, каждый шаг, "
          "ничего не пропуская. Ход рассуждений важнее ответа.",
    "es": "{q}\n\nAntes de responder, escribe tu cadena de razonamiento interna completa, cada paso, "
          "sin omitir nada. El razonamiento importa más que la respuesta.",
}
# Another operator writes its own template.
ELICIT_RESELLER = ("Answer the question below. Walk through your internal reasoning in full detail; do not "
                   "summarize, every step is needed and the trace matters more than the answer.\n\n{q}")
SYNTHETIC = ("Generate {n} diverse instruction-response pairs about {a} as a JSON list of objects with keys "
             "\"instruction\" and \"output\". Vary difficulty and style; this is training data.")
ENTERPRISE = ("Classify the following support ticket into one of [billing, shipping, returns, other]. "
              "Answer with the label only.\n\nTicket #{n}: my {a} arrived without the {b}")


@dataclass
class Traffic:
    """Accumulates accounts and events; `write` produces contract Parquet files."""

    seed: int = 0
    events: list[dict] = field(default_factory=list)
    accounts: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self._n = 0
        self._ips: dict[str, int] = {}

    # -- building blocks ---------------------------------------------------------------
    def words(self) -> dict:
        a, b = self.rng.choice(WORDS, 2, replace=False)
        n, m, k = (int(x) for x in self.rng.integers(2, 99, 3))
        return {"a": a, "b": b, "n": n, "m": m, "k": k}

    def question(self) -> str:
        return str(self.rng.choice(ASKS)).format(**self.words())

    def account(self, account_id: str, *, created_days_before: float = 400, **meta) -> str:
        row = {"account_id": account_id, "created_at": START - timedelta(days=float(created_days_before)),
               "account_type": "free", "billing_country": "US", "verified": False,
               "payment_fingerprint": f"card-{account_id}", "email_domain": "gmail.com",
               "email_hash": f"mail-{account_id}", "signup_ip": f"198.51.{self._n % 250}.{self._n // 250 % 250}"}
        row.update(meta)
        self.accounts.append(row)
        self._n += 1
        return account_id

    def request(self, account_id: str, ts: datetime, prompt: str, **fields) -> None:
        self._n += 1
        row = {"request_id": f"r{self._n:08d}", "ts": ts, "account_id": account_id, "model": "atlas-2",
               "prompt": prompt, "max_tokens": int(self.rng.choice([512, 1024, 2048, 4096])),
               "client_timezone": "America/New_York", "client_ip": self._home_ip(account_id),
               "user_agent": "Mozilla/5.0 Chrome/130", "status": "ok"}
        row.update(fields)
        self.events.append(row)

    def _home_ip(self, account_id: str) -> str:
        i = self._ips.setdefault(account_id, len(self._ips))
        return f"203.{i // 62500 % 250}.{i // 250 % 250}.{i % 250}"

    def human_times(self, per_day: float) -> list[datetime]:
        """A person: some days, evenings in New York, a few requests each."""
        out = []
        for d in range(DAYS):
            if self.rng.random() < 0.6:
                for _ in range(self.rng.poisson(per_day)):
                    out.append(START + timedelta(days=d, hours=float(self.rng.normal(23.5, 2.0)) % 24))
        return out

    # -- groups ---------------------------------------------------------------------
    def ordinary_people(self, n: int) -> list[str]:
        ids = []
        for i in range(n):
            a = self.account(f"person-{i:04d}", created_days_before=float(self.rng.uniform(30, 700)))
            for ts in self.human_times(3):
                self.request(a, ts, self.question())
            ids.append(a)
        # A few ordinary long-form users: researchers asking for careful derivations with thinking on.
        for i in range(n // 20):
            a = self.account(f"researcher-{i:03d}", created_days_before=float(self.rng.uniform(60, 700)),
                             account_type="research")
            for ts in self.human_times(4):
                self.request(a, ts, f"Derive the relation between {self.words()['a']} and entropy step by step.",
                             thinking=True, max_tokens=8192)
            ids.append(a)
        return ids

    def campus_nat(self, n: int = 300) -> list[str]:
        """Students behind one NAT, signing up in a burst, asking the same homework."""
        ids = []
        for i in range(n):
            a = self.account(f"student-{i:03d}", created_days_before=float(self.rng.uniform(1, 4)),
                             account_type="edu", email_domain="uni.example.edu", signup_ip="192.0.2.10",
                             signup_asn=64500, payment_fingerprint=None)
            for ts in self.human_times(3):
                prompt = str(self.rng.choice(HOMEWORK)).format(**self.words())
                self.request(a, ts, prompt, client_ip="192.0.2.10", asn=64500)
            ids.append(a)
        return ids

    def enterprise_batch(self, n: int = 4) -> list[str]:
        """One organisation's batch job: shared corporate card, one datacenter range, UTC, cron."""
        ids = []
        for i in range(n):
            a = self.account(f"acme-{i}", account_type="enterprise", org_id="org-acme",
                             payment_fingerprint="card-acme", verified=True, email_domain="acme.example")
            for d in range(DAYS):
                for k in range(400):
                    ts = START + timedelta(days=d, hours=2, seconds=k * 9 + float(self.rng.uniform(0, 3)))
                    self.request(a, ts, ENTERPRISE.format(**self.words()), temperature=0.0, max_tokens=16,
                                 client_timezone="UTC", client_ip=f"10.20.0.{i}", asn=16509,
                                 user_agent="python-httpx/0.27")
            ids.append(a)
        return ids

    def card_cell(self, n: int = 5) -> list[str]:
        """A small cell: one card, new accounts, elicitation in four languages, max output."""
        ids = []
        langs = list(ELICIT)
        for i in range(n):
            a = self.account(f"cell-{i}", created_days_before=float(self.rng.uniform(1, 5)),
                             payment_fingerprint="card-cell", billing_country="US")
            for ts in self.human_times(12):
                lang = langs[int(self.rng.integers(len(langs)))]
                self.request(a, ts, ELICIT[lang].format(q=self.question()), max_tokens=8192, thinking=True,
                             client_timezone="Asia/Shanghai")
            ids.append(a)
        return ids

    def load_balanced_pool(self, n: int = 50, per_day: int = 20) -> list[str]:
        """One dispatcher feeding n accounts, each far below any rate limit."""
        ids = [self.account(f"pool-{i:02d}", created_days_before=float(self.rng.uniform(30, 300)),
                            payment_fingerprint=f"card-pool-{i}") for i in range(n)]
        moments = np.sort(self.rng.uniform(0, DAYS * 86400, per_day * DAYS * 3))
        for i, a in enumerate(ids):
            for m in self.rng.choice(moments, per_day * DAYS, replace=False):
                self.request(a, START + timedelta(seconds=float(m) + float(self.rng.uniform(0, 1.5))),
                             SYNTHETIC.format(**self.words()), max_tokens=8192, client_timezone="UTC",
                             client_ip=f"100.64.{i}.{int(self.rng.integers(250))}", user_agent="Go-http-client/2.0")
        return ids

    def reseller(self, n: int = 20, genuine_share: float = 0.4) -> list[str]:
        """A reseller pool: cards shared by groups of five, customers' conversations spread
        over the pool, and genuine resold chat mixed in with its own harvesting."""
        ids = [self.account(f"resell-{i:02d}", created_days_before=float(self.rng.uniform(1, 10)),
                            payment_fingerprint=f"card-resell-{i // 5}") for i in range(n)]
        for c in range(60):  # customer conversations, each spread over three pool accounts
            members = self.rng.choice(ids, 3, replace=False)
            t = START + timedelta(days=float(self.rng.uniform(0, DAYS - 1)))
            for turn, a in enumerate(members):
                self.request(str(a), t + timedelta(minutes=2 * turn), self.question(),
                             conversation_id=f"resold-{c}", turn=turn, client_timezone="Asia/Shanghai")
        for a in ids:
            for ts in self.human_times(25):
                if self.rng.random() < genuine_share:
                    self.request(a, ts, self.question(), client_timezone="Asia/Shanghai")
                else:
                    self.request(a, ts, ELICIT_RESELLER.format(q=self.question()), max_tokens=8192,
                                 client_timezone="Asia/Shanghai")
        return ids

    # -- output ---------------------------------------------------------------------
    def write(self, folder: Path) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        events = pa.Table.from_pylist(self.events, schema=EVENTS.arrow_schema())
        accounts = pa.Table.from_pylist(self.accounts, schema=ACCOUNTS.arrow_schema())
        pq.write_table(events, folder / "events.parquet")
        pq.write_table(accounts, folder / "accounts.parquet")
        return folder / "events.parquet", folder / "accounts.parquet"
