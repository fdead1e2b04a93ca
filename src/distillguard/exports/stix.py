"""A scan folder -> a STIX 2.1 bundle another lab can load and match (write_stix).

The bundle holds, all created by the producer's identity and marked with one TLP level:

  identity         the producer (the lab that ran the scan)
  attack-pattern   MITRE ATLAS AML.T0024.002, Extract AI Model (sharing.yaml: technique)
  campaign         one per flagged campaign; --uses--> the attack-pattern
  indicator        one per shared value (sharing.py decides which); --indicates--> its
                   campaign, --based-on--> the campaign's observed-data
  observed-data    one per campaign with shared values: the observables it refers to
  observables      ipv4-addr / ipv6-addr (raw IPs only), autonomous-system, and the custom
                   distillguard-identifier (TLS fingerprints, user agents, keyed hashes)

plus the extension-definition of the custom observable and its author, the distillguard
project (both fixed, TLP:CLEAR: a public schema). Ids are uuid5 of stable names and every
timestamp comes from the scan, so a scan folder always gives the same bytes.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import stix2
from stix2.patterns import (AndBooleanExpression, EqualityComparisonExpression, IntegerConstant, ObjectPath,
                            ObservationExpression, StringConstant)
from stix2.properties import StringProperty
from stix2.v21 import (AttackPattern, AutonomousSystem, Bundle, Campaign, CustomObservable, ExtensionDefinition,
                       Identity, Indicator, IPv4Address, IPv6Address, ObservedData, Relationship)
from stix2validator import ValidationOptions, validate_string

from distillguard.exports.sharing import (Campaign as ScanCampaign, SharedScan, SharedValue, load_policy,
                                          sentence, shared_scan, valid_until, withheld_counts,
                                          write_atomically)
from distillguard.verdicts.read import reason_text

POLICY = load_policy()
TLP_MARKINGS = {"white": stix2.v21.TLP_WHITE, "green": stix2.v21.TLP_GREEN, "amber": stix2.v21.TLP_AMBER,
                "red": stix2.v21.TLP_RED}
# STIX caps number_observed (observed-data) at 999,999,999.
MAX_OBSERVED = 999_999_999
# Strict: every STIX recommendation is an error (and relationships must point inside the
# bundle; check() does the other references), except two we depart from on purpose:
#   uuid-check     SDO ids SHOULD be UUIDv4. Ours are uuid5 of stable names: a re-export of
#                  the same scan gives the same ids (and bytes), so a partner's platform
#                  updates its objects instead of duplicating them.
#   extref-hashes  a URL SHOULD come with a hash of its content; the ATLAS technique's page
#                  is a living web page (MITRE's own bundles give no hash either).
VALIDATION = ValidationOptions(version="2.1", strict=True, disabled=["uuid-check", "extref-hashes"],
                               enforce_refs=True)


@CustomObservable(POLICY.extension["type"], [
    ("kind", StringProperty(required=True)),
    ("value", StringProperty(required=True)),
    ("namespace", StringProperty()),
    ("key_id", StringProperty()),
    ("format", StringProperty()),
], id_contrib_props=["kind", "value"], extension_name=POLICY.ids["extension"])
class DistillguardIdentifier:
    """A value a campaign's members shared that STIX has no observable for (sharing.yaml: extension)."""


class InvalidBundle(ValueError):
    """The bundle failed STIX validation; nothing was written."""


def write_stix(scan_dir: Path, out: Path, *, producer: str, tlp: str | None = None) -> dict:
    """Write the scan's campaigns and shared indicators to `out` as a validated STIX 2.1 bundle.

    tlp: clear | green | amber | red (default: sharing.yaml's). Returns counts of what went
    in and of the values withheld, by reason. Raises InvalidBundle, listing the validator's
    messages, instead of writing an invalid file; the previous file at `out` stays as it was."""
    producer = producer.strip()
    if not producer:
        raise ValueError("producer: the name of the organisation that ran the scan")
    scan = shared_scan(Path(scan_dir), POLICY)
    level = POLICY.tlp_level(tlp)
    objects, counts = build_objects(scan, producer=producer, tlp=level)
    bundle = Bundle(objects=objects, id="bundle--" + POLICY.uuid_for("bundle", producer, scan.scan_id, level))
    text = bundle.serialize(sort_keys=True, indent=2) + "\n"
    check(text)
    write_atomically(Path(out), text)
    return counts | {"objects": len(objects)} | withheld_counts(scan)


def check(text: str) -> None:
    """Validate a serialized bundle; raise InvalidBundle with every error found.

    stix2-validator takes 5-10 ms per object (jsonschema), about 25 ms per shared value
    (its indicator, observable and two relationships): a thousand values take half a minute.
    Its enforce_refs looks at relationships only, so every other reference (created_by_ref,
    object_refs, object_marking_refs...) and the uniqueness of ids are checked here."""
    results = validate_string(text, VALIDATION)
    messages = []
    for r in results if isinstance(results, list) else [results]:
        if not r.is_valid:
            # An exception inside the validator arrives as ValidationErrorResults (.error).
            errors = [e.message for e in getattr(r, "errors", [])] or [getattr(r, "error", "(no message)")]
            messages += [f"{getattr(r, 'object_id', None) or 'bundle'}: {m}" for m in errors]
    messages += _reference_errors(json.loads(text)["objects"])
    if messages:
        raise InvalidBundle("STIX bundle is not valid:\n  " + "\n  ".join(messages))


def _reference_errors(objects: list[dict]) -> list[str]:
    ids = collections.Counter(o["id"] for o in objects)
    errors = [f"{i}: duplicate id" for i, n in sorted(ids.items()) if n > 1]

    def refs(value, key: str = ""):
        if isinstance(value, dict):
            for k, v in value.items():
                yield from refs(v, k)
        elif isinstance(value, list):
            for v in value:
                yield from refs(v, key)
        elif isinstance(value, str) and key.endswith(("_ref", "_refs")):
            yield value

    for o in objects:
        errors += [f"{o['id']}: {ref} is not in the bundle" for ref in refs(o) if ref not in ids]
    return errors


# -- the objects ----------------------------------------------------------------------------

def build_objects(scan: SharedScan, *, producer: str, tlp: str) -> tuple[list, dict]:
    p = POLICY
    marking = TLP_MARKINGS[p.tlp_levels[tlp]["stix"]]
    public = TLP_MARKINGS[p.tlp_levels["clear"]["stix"]]
    published = p.ids["schema_published"]
    as_of = scan.as_of
    # What every object the producer creates carries.
    own = {"created": as_of, "modified": as_of, "object_marking_refs": [marking]}

    project = Identity(id=p.ids["project_identity"], name=p.ids["project_name"], identity_class="organization",
                       description="The open-source distillguard project, author of the export schema.",
                       created=published, modified=published, object_marking_refs=[public])
    extension = ExtensionDefinition(
        id=p.ids["extension"], created_by_ref=project.id, created=published, modified=published,
        name=p.extension["name"], description=" ".join(p.extension["description"].split()),
        schema=json.dumps(p.extension["schema"], sort_keys=True), version=p.extension["version"],
        extension_types=["new-sco"], object_marking_refs=[public])
    identity = Identity(id="identity--" + p.uuid_for("identity", producer), name=producer,
                        identity_class="organization", **own)
    t = p.technique
    technique = AttackPattern(
        id="attack-pattern--" + p.uuid_for("attack-pattern", producer, t["id"]), created_by_ref=identity.id,
        name=t["name"], aliases=list(t["aliases"]), description=" ".join(t["description"].split()),
        kill_chain_phases=[{"kill_chain_name": t["kill_chain_name"], "phase_name": t["tactic"]["phase"]}],
        external_references=[{"source_name": t["source_name"], "external_id": t["id"], "url": t["url"]}], **own)
    objects: list = [*sorted({marking.id: marking, public.id: public}.values(), key=lambda m: m.id),
                     project, extension, identity, technique]
    counts = {"campaigns": 0, "indicators": 0, "observed-data": 0, "observables": 0}
    emitted: set[str] = set()  # an observable two campaigns share is written once
    for campaign in scan.campaigns:
        objects += campaign_objects(campaign, scan, identity=identity, technique=technique, producer=producer,
                                    tlp=tlp, own=own, counts=counts, emitted=emitted)
    return objects, counts


def campaign_objects(c: ScanCampaign, scan: SharedScan, *, identity, technique, producer: str, tlp: str,
                     own: dict, counts: dict, emitted: set[str]) -> list:
    p = POLICY
    name_of = lambda *parts: p.uuid_for(producer, scan.scan_id, tlp, c.campaign_id, *parts)  # noqa: E731
    reasons = "; ".join(f"{reason_text(code)} ({code})" for code in c.reasons) or "none recorded"
    campaign = Campaign(
        id="campaign--" + name_of("campaign"), created_by_ref=identity.id, name=c.campaign_id,
        description=(f"A distillation campaign: {c.accounts:,} accounts sent {c.exchanges:,} exchanges between "
                     f"{c.first_seen:%Y-%m-%d %H:%M} and {c.last_seen:%Y-%m-%d %H:%M} UTC (campaign p-value "
                     f"{c.p_value:.2g}, risk {c.risk:.2f}). Reasons: {reasons}."),
        first_seen=c.first_seen, last_seen=c.last_seen, objective=p.campaign_objective,
        external_references=[{"source_name": "distillguard", "external_id": f"{scan.scan_id}/{c.campaign_id}",
                              "description": "scan id / campaign id in the producer's scan"}], **own)
    out: list = [campaign, Relationship(
        id="relationship--" + name_of("uses", technique.id), created_by_ref=identity.id, relationship_type="uses",
        source_ref=campaign.id, target_ref=technique.id, **own)]
    counts["campaigns"] += 1
    if not c.values:
        return out  # observed-data needs at least one observable
    observables = {}
    for v in c.values:
        sco = observable(v, scan.key_id, own["object_marking_refs"])
        observables.setdefault(sco.id, sco)
    observed = ObservedData(
        id="observed-data--" + name_of("observed-data"), created_by_ref=identity.id,
        first_observed=c.first_seen, last_observed=c.last_seen,
        number_observed=max(1, min(c.exchanges, MAX_OBSERVED)), object_refs=sorted(observables), **own)
    new = [sco for sco in observables.values() if sco.id not in emitted]
    emitted.update(sco.id for sco in new)
    out += [*new, observed]
    counts["observed-data"] += 1
    counts["observables"] += len(new)
    for v in c.values:
        indicator = Indicator(
            id="indicator--" + name_of("indicator", v.kind, v.value), created_by_ref=identity.id,
            name=f"{c.campaign_id}: {v.kind.replace('_', ' ')}{' (keyed hash)' if v.keyed else ''}",
            description=indicator_description(v, c, scan.key_id), indicator_types=list(v.policy.indicator_types),
            pattern=pattern(v), pattern_type="stix", pattern_version="2.1",
            valid_from=v.first_seen or c.first_seen, valid_until=valid_until(v, scan.as_of), **own)
        out += [indicator,
                Relationship(id="relationship--" + name_of("indicates", indicator.id), created_by_ref=identity.id,
                             relationship_type="indicates", source_ref=indicator.id, target_ref=campaign.id, **own),
                Relationship(id="relationship--" + name_of("based-on", indicator.id), created_by_ref=identity.id,
                             relationship_type="based-on", source_ref=indicator.id, target_ref=observed.id, **own)]
        counts["indicators"] += 1
    return out


def observable(v: SharedValue, key_id: str, markings: list):
    form = "identifier" if v.keyed else v.policy.stix
    if form == "ip":
        cls = IPv4Address if v.ip.version == 4 else IPv6Address
        return cls(value=str(v.ip), object_marking_refs=markings)
    if form == "autonomous-system":
        return AutonomousSystem(number=int(v.value), object_marking_refs=markings)
    extra = {}
    if v.keyed:
        extra = {"namespace": v.policy.namespace, "key_id": key_id}
    elif (fmt := v.policy.format_of(v.value)) is not None:
        extra = {"format": fmt.name}
    # user-agent values land here too: STIX's network-traffic needs an address we do not share.
    return DistillguardIdentifier(kind=v.kind, value=v.value, object_marking_refs=markings, **extra)


def pattern(v: SharedValue) -> str:
    """The STIX pattern matching the value. stix2's pattern classes escape quotes and
    backslashes in string constants: user agents are attacker-controlled text."""
    def equals(sco_type: str, path: list[str], constant) -> EqualityComparisonExpression:
        return EqualityComparisonExpression(ObjectPath(sco_type, path), constant)

    form = "identifier" if v.keyed else v.policy.stix
    identifier = POLICY.extension["type"]
    if form == "ip":
        expr = equals(f"ipv{v.ip.version}-addr", ["value"], StringConstant(str(v.ip)))
    elif form == "autonomous-system":
        expr = equals("autonomous-system", ["number"], IntegerConstant(int(v.value)))
    elif form == "user-agent":
        expr = equals("network-traffic", ["extensions", "http-request-ext", "request_header", "User-Agent"],
                      StringConstant(v.value))
    elif v.keyed:
        # The namespace is inside the hash: the value alone matches, as client or signup IP.
        expr = equals(identifier, ["value"], StringConstant(v.value))
    else:
        expr = AndBooleanExpression([equals(identifier, ["kind"], StringConstant(v.kind)),
                                     equals(identifier, ["value"], StringConstant(v.value))])
    return str(ObservationExpression(expr))


def indicator_description(v: SharedValue, c: ScanCampaign, key_id: str) -> str:
    text = f"{sentence(v.policy.about)}, {v.usage(c.accounts)}. Shared because {v.policy.why}."
    if v.keyed:
        text += (f" The value is HMAC-SHA256 under the key with id {key_id} of \"{v.policy.namespace}:<value>\" "
                 "(the value trimmed; IP addresses in lower case): hash your own values the same way to match.")
    elif (fmt := v.policy.format_of(v.value)) is not None:
        text += f" Format: {fmt.name}."
    return text
