"""The STIX 2.1 export: valid, complete, deterministic, and nothing of the customers in it."""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import re
from datetime import datetime, timedelta

import pytest
import stix2
from scan_folder import AGENT, AS_OF, CARD, JA3, JA4, KEY, customer_values, indicator, strings, write_scan
from stix2patterns.v21.pattern import Pattern
from stix2patterns.validator import run_validator
from stix2validator import ValidationOptions, validate_string

from distillguard.exports import stix
from distillguard.exports.sharing import UnsafeValue, load_policy
from distillguard.verdicts.read import ScanDir

PRODUCER = "Example Lab"
# The validator exactly as write_stix is documented to run it (two SHOULDs waived, see stix.py).
STRICT = ValidationOptions(version="2.1", strict=True, disabled=["uuid-check", "extref-hashes"], enforce_refs=True)


def export(scan_dir, path, **kwargs) -> tuple[dict, list[dict], str]:
    counts = stix.write_stix(scan_dir, path, producer=PRODUCER, **kwargs)
    text = path.read_text()
    return counts, json.loads(text)["objects"], text


def literal(pattern: str) -> list[str]:
    """The string constants of a pattern, unescaped as STIX patterning defines (\\' and \\\\)."""
    found = Pattern(pattern).inspect().comparisons
    raw = [value for comps in found.values() for _, _, value in comps if value.startswith("'")]
    return [re.sub(r"\\(['\\])", r"\1", value[1:-1]) for value in raw]


def by_type(objects: list[dict]) -> dict[str, list[dict]]:
    out = collections.defaultdict(list)
    for o in objects:
        out[o["type"]].append(o)
    return out


def test_bundle_is_valid_and_holds_every_campaign_with_its_technique(scanned, tmp_path):
    counts, objects, text = export(scanned.scan_dir, tmp_path / "bundle.json")
    assert validate_string(text, STRICT).is_valid
    kinds = by_type(objects)
    for t in ("identity", "attack-pattern", "campaign", "indicator", "observed-data", "relationship",
              "extension-definition", "marking-definition"):
        assert kinds[t], t
    (technique,) = kinds["attack-pattern"]
    assert technique["name"] == "Extract AI Model" and "Extract ML Model" in technique["aliases"]
    assert {"source_name": "mitre-atlas", "external_id": "AML.T0024.002",
            "url": "https://atlas.mitre.org/techniques/AML.T0024.002"} in technique["external_references"]
    assert technique["kill_chain_phases"] == [{"kill_chain_name": "mitre-atlas", "phase_name": "exfiltration"}]

    scan = ScanDir(scanned.scan_dir)
    campaigns = {c["name"]: c for c in kinds["campaign"]}
    assert set(campaigns) == {r["campaign_id"] for r in scan.table("campaigns").to_pylist()}
    assert counts["campaigns"] == len(campaigns) and counts["indicators"] == len(kinds["indicator"])

    producer = next(i for i in kinds["identity"] if i["name"] == PRODUCER)
    assert producer["identity_class"] == "organization"
    as_of = datetime.fromisoformat(scan.meta["as_of"])
    project = {load_policy().ids["project_identity"], load_policy().ids["extension"]}
    for o in objects:
        if o["type"] == "marking-definition":
            continue
        tlp = stix2.v21.TLP_WHITE if o["id"] in project else stix2.v21.TLP_AMBER
        assert o["object_marking_refs"] == [tlp.id], o["id"]
        if "created" in o and o["id"] not in project:
            assert datetime.fromisoformat(o["created"].replace("Z", "+00:00")) == as_of
            if o["id"] != producer["id"]:
                assert o["created_by_ref"] == producer["id"], o["id"]

    rels = {(r["source_ref"], r["relationship_type"], r["target_ref"]) for r in kinds["relationship"]}
    assert all((c["id"], "uses", technique["id"]) in rels for c in campaigns.values())
    targets = {s: t for s, kind, t in rels if kind == "indicates"}
    assert set(targets) == {i["id"] for i in kinds["indicator"]}
    assert set(targets.values()) <= {c["id"] for c in campaigns.values()}
    for observed in kinds["observed-data"]:
        assert observed["number_observed"] >= 1 and observed["object_refs"]

    # The card cell: its shared card (keyed) and its user agent indicate its campaign.
    cell = {r["campaign_id"] for r in scan.table("accounts").to_pylist() if r["account_id"] in scanned.groups["cell"]}
    (cell_id,) = cell - {None}
    names = {i["name"] for i in kinds["indicator"] if targets[i["id"]] == campaigns[cell_id]["id"]}
    assert {f"{cell_id}: payment (keyed hash)", f"{cell_id}: user agent"} <= names


@pytest.mark.parametrize("raw", [False, True])
def test_no_customer_identifier_leaves(scanned, scanned_raw_ips, tmp_path, raw):
    world = scanned_raw_ips if raw else scanned
    _, objects, text = export(world.scan_dir, tmp_path / "bundle.json")
    found = "\n".join(strings(json.loads(text)))
    leaked = sorted(v for v in customer_values(world, ips=not raw) if v in found)
    assert not leaked
    assert not [o for o in objects if o["type"] in ("ipv4-addr", "ipv6-addr")] or raw


def test_hostile_user_agent_is_exact_data_and_a_valid_pattern(scanned, tmp_path):
    _, objects, _ = export(scanned.scan_dir, tmp_path / "bundle.json")
    agent = scanned.hostile_agent
    assert agent in {o["value"] for o in objects if o["type"] == "distillguard-identifier"}
    patterns = [o["pattern"] for o in objects if o["type"] == "indicator" and "User-Agent" in o["pattern"]]
    matching = [p for p in patterns if literal(p) == [agent]]
    assert len(matching) == 1
    assert run_validator(matching[0], stix_version="2.1") == []


def test_every_form_of_value(tmp_path):
    folder = write_scan(tmp_path / "scan", raw_ips=True)
    counts, objects, text = export(folder, tmp_path / "bundle.json")
    assert validate_string(text, STRICT).is_valid
    kinds = by_type(objects)
    patterns = {i["pattern"] for i in kinds["indicator"]}
    card = "hmac-sha256:" + hmac.new(KEY, f"payment:{CARD}".encode(), hashlib.sha256).hexdigest()
    assert patterns >= {
        "[ipv4-addr:value = '203.0.113.7']",
        "[ipv6-addr:value = '2001:db8::7']",
        "[ipv4-addr:value = '198.51.100.9']",
        "[autonomous-system:number = 64500]",
        f"[distillguard-identifier:kind = 'tls' AND distillguard-identifier:value = '{JA3}']",
        f"[distillguard-identifier:kind = 'tls' AND distillguard-identifier:value = '{JA4}']",
        "[distillguard-identifier:kind = 'tls' AND distillguard-identifier:value = 'some-other-fingerprint']",
        f"[distillguard-identifier:value = '{card}']",
    }
    (agent_pattern,) = patterns - {p for p in patterns if "User-Agent" not in p}
    assert literal(agent_pattern) == [AGENT] and run_validator(agent_pattern, stix_version="2.1") == []
    assert text.isascii()  # the agent's bidi override and accents arrive as JSON escapes, never raw
    assert len(patterns) == counts["indicators"] == 9

    # Withheld: a kind not shared, a value others use, a value one member used.
    found = "\n".join(strings(json.loads(text)))
    assert not [v for v in ("catchall.example", "192.0.2.1", "192.0.2.2") if v in found]
    assert counts["withheld (kind email_domain not shared)"] == 1
    assert counts["withheld (used outside the campaign)"] == counts["withheld (used by fewer than 2 members)"] == 1

    extension = load_policy().ids["extension"]
    identifiers = {o["value"]: o for o in kinds["distillguard-identifier"]}
    assert all(o["extensions"] == {extension: {"extension_type": "new-sco"}} for o in identifiers.values())
    assert identifiers[JA3]["format"] == "JA3" and identifiers[JA4]["format"] == "JA4"
    assert identifiers[card]["namespace"] == "payment" and identifiers[card]["key_id"] == "00112233aabbccdd"
    assert identifiers[AGENT]["kind"] == "user_agent"

    # The campaign without shared values is there, without observed-data.
    bare = next(c for c in kinds["campaign"] if c["name"] == "campaign-bare")
    assert bare["id"] not in {r["target_ref"] for r in kinds["relationship"] if r["relationship_type"] == "indicates"}
    assert len(kinds["observed-data"]) == 1
    as_of = datetime.fromisoformat(AS_OF)
    ip = next(i for i in kinds["indicator"] if i["pattern"] == "[ipv4-addr:value = '203.0.113.7']")
    assert datetime.fromisoformat(ip["valid_until"].replace("Z", "+00:00")) == as_of + timedelta(days=30)


def test_keyed_addresses_match_a_partners_own_hash(tmp_path):
    """A partner holding the key hashes "ip:<address>" (lower case) and finds the indicator."""
    folder = write_scan(tmp_path / "scan", raw_ips=False)
    _, objects, text = export(folder, tmp_path / "bundle.json")
    assert validate_string(text, STRICT).is_valid
    assert not [o for o in objects if o["type"] in ("ipv4-addr", "ipv6-addr")]
    assert "203.0.113.7" not in text and "2001:" not in text.lower()
    patterns = {o["pattern"] for o in objects if o["type"] == "indicator"}
    for address in ("203.0.113.7", "2001:db8::7", "198.51.100.9"):
        digest = hmac.new(KEY, f"ip:{address}".encode(), hashlib.sha256).hexdigest()
        assert f"[distillguard-identifier:value = 'hmac-sha256:{digest}']" in patterns


@pytest.mark.parametrize("raw_ips, kind, value", [(False, "client_ip", "203.0.113.7"), (True, "payment", CARD)])
def test_a_clear_customer_value_is_refused(tmp_path, raw_ips, kind, value):
    folder = write_scan(tmp_path / "scan", raw_ips=raw_ips, rows=[indicator("campaign-forms", kind, value)])
    with pytest.raises(UnsafeValue):
        stix.write_stix(folder, tmp_path / "bundle.json", producer=PRODUCER)
    assert not (tmp_path / "bundle.json").exists()


def test_an_invalid_bundle_is_never_written(tmp_path, monkeypatch):
    folder = write_scan(tmp_path / "scan")
    out = tmp_path / "bundle.json"
    out.write_text("previous export")
    build = stix.build_objects

    def with_a_bad_indicator(scan, **kwargs):
        objects, counts = build(scan, **kwargs)
        # Valid to the stix2 library, but strict validation wants a name and a description.
        bare = stix2.v21.Indicator(pattern="[ipv4-addr:value = '192.0.2.99']", pattern_type="stix",
                                   valid_from=scan.as_of, created=scan.as_of, modified=scan.as_of)
        return objects + [bare], counts

    monkeypatch.setattr(stix, "build_objects", with_a_bad_indicator)
    with pytest.raises(stix.InvalidBundle, match="name and description"):
        stix.write_stix(folder, out, producer=PRODUCER)
    assert out.read_text() == "previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.json", "scan"]  # no temporary file left


def test_dangling_references_are_refused(tmp_path):
    folder = write_scan(tmp_path / "scan")
    _, objects, text = export(folder, tmp_path / "bundle.json")
    producer = next(o["id"] for o in objects if o["type"] == "identity" and o["name"] == PRODUCER)
    broken = json.dumps({**json.loads(text), "objects": [o for o in objects if o["id"] != producer]})
    with pytest.raises(stix.InvalidBundle, match=f"{producer} is not in the bundle"):
        stix.check(broken)
    with pytest.raises(stix.InvalidBundle, match="duplicate id"):
        stix.check(json.dumps({**json.loads(text), "objects": objects + objects[-1:]}))


def test_same_scan_same_bytes(scanned, tmp_path):
    stix.write_stix(scanned.scan_dir, tmp_path / "a.json", producer=PRODUCER)
    stix.write_stix(scanned.scan_dir, tmp_path / "b.json", producer=PRODUCER)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_tlp_level_is_configurable(tmp_path):
    folder = write_scan(tmp_path / "scan")
    _, objects, _ = export(folder, tmp_path / "bundle.json", tlp="tlp:green")
    marks = {ref for o in objects for ref in o.get("object_marking_refs", [])}
    assert marks == {stix2.v21.TLP_GREEN.id, stix2.v21.TLP_WHITE.id}
    with pytest.raises(ValueError, match="unknown TLP"):
        stix.write_stix(folder, tmp_path / "x.json", producer=PRODUCER, tlp="amber+strict")


def test_sharing_policy_is_complete():
    policy = load_policy()  # refuses kinds that differ from indicators.yaml, or a clear form for keyed-only kinds
    assert policy.tlp == "amber" and policy.max_outside_accounts == 0 and policy.min_accounts >= 2
    for kind in policy.kinds.values():
        assert len(kind.why.split()) >= 8, f"{kind.kind}: say why it is (not) shared"
        if not kind.clear_allowed:
            assert kind.stix is None and kind.namespace
    assert policy.technique["id"] == "AML.T0024.002" and policy.technique["tactic"]["id"] == "AML.TA0010"
