"""A scan folder -> a MISP event another lab can import and correlate (write_misp).

  event        one per scan: the TLP tag and the MISP galaxy tag of MITRE ATLAS
               AML.T0024.002 (the cluster still named "Extract ML Model")
  object       one distillation-campaign object per campaign (template: sharing.yaml):
               its id, sizes, dates and reason codes, and its shared values as attributes
               typed per kind (ip-src, AS, user-agent, ja3-fingerprint-md5, text), keyed
               hashes as MISP's `anonymised` type
  object       one anonymisation object (a MISP template) saying how keyed values were
               made, referenced by ("describes") every campaign object holding one

The values are those of the STIX export (sharing.py picks them for both). Uuids are uuid5
of stable names and every timestamp is the scan's, so a scan folder gives the same bytes.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from pymisp import MISPEvent, MISPObject, MISPOrganisation
from pymisp.abstract import describe_types

from distillguard.exports.sharing import (Campaign, KindPolicy, SharedScan, SharedValue, SharingPolicy, load_policy,
                                          sentence, shared_scan, withheld_counts, write_atomically)
from distillguard.verdicts.read import reason_text

POLICY = load_policy()
# The anonymisation template's method value for a keyed hash (its sane_default list).
HASH_METHOD = "hash - A hash function maps each attribute to a new (not necessarily unique) attribute."


def relation(kind: str, suffix: str | None = None) -> str:
    """MISP object relations are lower-case and hyphenated."""
    return "-".join(filter(None, (kind.replace("_", "-"), suffix)))


def template(policy: SharingPolicy = POLICY) -> dict:
    """The distillation-campaign object template, in misp-objects' definition.json form:
    the campaign's own fields, and one relation per form a shared value can take."""
    o = policy.misp["object"]
    attrs = {
        "campaign-id": {"misp-attribute": "text", "description": "The campaign's id in the producer's scan",
                        "disable_correlation": True},
        "scan-id": {"misp-attribute": "text", "description": "The producer's scan that found it",
                    "disable_correlation": True},
        "description": {"misp-attribute": "text", "description": "What the campaign did, in words",
                        "disable_correlation": True},
        "accounts": {"misp-attribute": "counter", "description": "Accounts in the campaign"},
        "exchanges": {"misp-attribute": "counter", "description": "Requests and responses the campaign exchanged"},
        "p-value": {"misp-attribute": "float", "description": "Calibrated p-value of the campaign decision"},
        "risk": {"misp-attribute": "float", "description": "The campaign's risk, 0 to 1"},
        "reason": {"misp-attribute": "text", "multiple": True, "disable_correlation": True,
                   "description": "A reason code of the verdict (its meaning in the comment)"},
    }
    for k in policy.kinds.values():
        if not k.share:
            continue
        if k.clear_allowed:
            attrs[relation(k.kind)] = {"misp-attribute": k.misp_type, "multiple": True, "description": k.about}
            for f in k.formats:
                attrs[relation(k.kind, f.name.lower())] = {"misp-attribute": f.misp_type, "multiple": True,
                                                           "description": f"{k.about} ({f.name})"}
        if k.namespace:
            attrs[relation(k.kind, "hmac")] = {"misp-attribute": policy.keyed["misp_type"], "multiple": True,
                                               "description": f"keyed hash of {k.about}"}
    for i, a in enumerate(attrs.values()):
        a["ui-priority"] = i
    return {"name": o["name"], "uuid": policy.ids["misp_template"], "version": o["version"],
            "meta-category": o["meta_category"], "description": " ".join(o["description"].split()),
            "required": ["campaign-id"], "attributes": attrs}


def check_types(policy: SharingPolicy = POLICY) -> None:
    """Refuse, at import, a sharing.yaml type or category MISP does not know (describeTypes)."""
    types, categories = describe_types["types"], describe_types["category_type_mappings"]
    for rel, spec in template(policy)["attributes"].items():
        if spec["misp-attribute"] not in types:
            raise ValueError(f"sharing.yaml: MISP has no attribute type {spec['misp-attribute']!r} ({rel})")
    for k in policy.kinds.values():
        forms = ([k.misp_type] if k.share and k.clear_allowed else []) + [f.misp_type for f in k.formats]
        forms += [policy.keyed["misp_type"]] if k.share and k.namespace else []
        for t in forms:
            if t not in categories.get(k.misp_category, ()):
                raise ValueError(f"sharing.yaml: {k.kind}: MISP category {k.misp_category!r} has no type {t!r}")


check_types()
TEMPLATE = template()


def write_misp(scan_dir: Path, out: Path, *, producer: str, tlp: str | None = None) -> dict:
    """Write the scan's campaigns and shared indicators to `out` as a MISP event (JSON,
    {"Event": ...} as MISP's own export and import use). Returns counts."""
    producer = producer.strip()
    if not producer:
        raise ValueError("producer: the name of the organisation that ran the scan")
    scan = shared_scan(Path(scan_dir), POLICY)
    event, counts = build_event(scan, producer=producer, tlp=POLICY.tlp_level(tlp))
    text = json.dumps({"Event": json.loads(event.to_json())}, sort_keys=True, indent=2) + "\n"
    write_atomically(Path(out), text)
    return counts | withheld_counts(scan)


def build_event(scan: SharedScan, *, producer: str, tlp: str) -> tuple[MISPEvent, dict]:
    p = POLICY
    uid = lambda *parts: p.uuid_for("misp", producer, scan.scan_id, tlp, *parts)  # noqa: E731
    # force_timestamps: keep the scan's time on every element instead of MISP's "now".
    event = MISPEvent(force_timestamps=True)
    event.uuid = uid("event")
    n = len(scan.campaigns)
    event.info = (f"distillguard: {n} distillation campaign{'s' * (n != 1)} in {producer}'s API traffic "
                  f"(scan {scan.scan_id}, data to {scan.as_of:%Y-%m-%d %H:%M} UTC)")
    event.date = scan.as_of.date()
    event.timestamp = scan.as_of
    event.published = False
    event.threat_level_id = p.misp["threat_level_id"]
    event.analysis = p.misp["analysis"]
    event.distribution = p.misp["distribution"]
    org = MISPOrganisation()
    org.name = producer
    org.uuid = p.uuid_for("identity", producer)  # the STIX export's identity, the same organisation
    event.Orgc = org
    event.add_tag(p.tlp_levels[tlp]["misp"])
    g = p.technique["misp_galaxy"]
    event.add_tag(f'misp-galaxy:{g["type"]}="{g["value"]}"')

    counts = {"campaigns": 0, "indicators": 0, "keyed": 0}
    keyed_objects = []
    for c in scan.campaigns:
        obj = campaign_object(c, scan, uid)
        event.add_object(obj)
        counts["campaigns"] += 1
        counts["indicators"] += len(c.values)
        if any(v.keyed for v in c.values):
            keyed_objects.append(obj)
            counts["keyed"] += sum(v.keyed for v in c.values)
    if keyed_objects:
        event.add_object(anonymisation_object(scan, uid, keyed_objects))
    return event, counts


def _object(name: str, uuid: str, ts: datetime, **kwargs) -> MISPObject:
    obj = MISPObject(name, standalone=False, force_timestamps=True, **kwargs)
    obj.uuid = uuid
    obj.timestamp = ts
    return obj


def campaign_object(c: Campaign, scan: SharedScan, uid) -> MISPObject:
    ts = scan.as_of
    obj = _object(TEMPLATE["name"], uid(c.campaign_id, "object"), ts, misp_objects_template_custom=TEMPLATE)
    obj.first_seen = c.first_seen
    obj.last_seen = c.last_seen
    obj.comment = f"{c.accounts:,} accounts, {c.exchanges:,} exchanges"

    def add(rel: str, value, *, ident: str, **kwargs) -> None:
        spec = TEMPLATE["attributes"][rel]
        kwargs.setdefault("disable_correlation", spec.get("disable_correlation", False))
        obj.add_attribute(rel, value=value, type=spec["misp-attribute"], uuid=uid(c.campaign_id, rel, ident),
                          timestamp=ts, **kwargs)

    reasons = "; ".join(reason_text(code) for code in c.reasons)
    add("campaign-id", c.campaign_id, ident="")
    add("scan-id", scan.scan_id, ident="")
    add("description", f"A distillation campaign: {c.accounts:,} accounts sent {c.exchanges:,} exchanges "
                       f"between {c.first_seen:%Y-%m-%d %H:%M} and {c.last_seen:%Y-%m-%d %H:%M} UTC. "
                       f"{POLICY.campaign_objective} Why it was flagged: {reasons or 'no reason recorded'}.", ident="")
    add("accounts", c.accounts, ident="")
    add("exchanges", c.exchanges, ident="")
    add("p-value", c.p_value, ident="")
    add("risk", round(c.risk, 4), ident="")
    for code in c.reasons:
        add("reason", code, ident=code, comment=reason_text(code))
    for v in c.values:
        rel, comment = value_relation(v, scan.key_id)
        seen = {"first_seen": v.first_seen, "last_seen": v.last_seen} if v.first_seen else {}
        add(rel, misp_value(v), ident=v.value, category=v.policy.misp_category,
            to_ids=(not v.keyed) and v.policy.to_ids, comment=f"{comment}{sentence(v.usage(c.accounts))}.", **seen)
    return obj


def value_relation(v: SharedValue, key_id: str) -> tuple[str, str]:
    """The object relation (hence MISP type) a value takes, and what the comment says of it."""
    k: KindPolicy = v.policy
    if v.keyed:
        return relation(k.kind, "hmac"), (f"HMAC-SHA256 (key id {key_id}) of \"{k.namespace}:<value>\" "
                                          f"(the anonymisation object says how): {k.about}. ")
    fmt = k.format_of(v.value)
    if fmt is not None:
        return relation(k.kind, fmt.name.lower()), f"{sentence(k.about)} ({fmt.name}). "
    return relation(k.kind), f"{sentence(k.about)}. "


def misp_value(v: SharedValue) -> str:
    if not v.keyed and v.ip is not None:
        return str(v.ip)
    return v.value


def anonymisation_object(scan: SharedScan, uid, described: list[MISPObject]) -> MISPObject:
    obj = _object("anonymisation", uid("anonymisation"), scan.as_of, strict=True)
    namespaces = sorted({k.namespace for k in POLICY.kinds.values() if k.namespace})
    obj.add_attribute("keyed-hash-function", value="hmac-sha256", uuid=uid("anonymisation", "function"),
                      timestamp=scan.as_of)
    obj.add_attribute("method", value=HASH_METHOD, uuid=uid("anonymisation", "method"), timestamp=scan.as_of)
    obj.add_attribute("description", uuid=uid("anonymisation", "description"), timestamp=scan.as_of, value=(
        f"Values of type anonymised are \"hmac-sha256:\" followed by the hex HMAC-SHA256, under the key with id "
        f"{scan.key_id}, of \"<namespace>:<value>\" (namespaces: {', '.join(namespaces)}; the value trimmed, IP "
        "addresses in lower case, other values exactly as the provider's records hold them). The key is shared "
        "between partner labs, never published: hash your own values the same way and compare."))
    for target in described:
        obj.add_reference(target.uuid, "describes", uuid=uid("anonymisation", "describes", target.uuid),
                          timestamp=scan.as_of)
    return obj
