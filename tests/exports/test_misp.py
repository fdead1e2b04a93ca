"""The MISP export: an event MISP can import, typed by its own vocabulary, deterministic."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from importlib import resources

import jsonschema
import pytest
from pymisp import MISPEvent
from scan_folder import AGENT, CARD, JA3, JA4, KEY, customer_values, strings, write_scan

from distillguard.exports import misp
from distillguard.exports.sharing import load_policy
from distillguard.verdicts.read import ScanDir

PRODUCER = "Example Lab"
GALAXY = 'misp-galaxy:mitre-atlas-attack-pattern="Extract ML Model"'
DESCRIBE = json.loads(resources.files("pymisp").joinpath("data/describeTypes.json").read_text())["result"]
# MISP's event schema as pymisp ships it (the lax one: its strict sibling predates objects).
EVENT_SCHEMA = json.loads(resources.files("pymisp").joinpath("data/schema-lax.json").read_text())


def export(scan_dir, path, **kwargs) -> tuple[dict, MISPEvent, str]:
    counts = misp.write_misp(scan_dir, path, producer=PRODUCER, **kwargs)
    text = path.read_text()
    event = MISPEvent()
    event.load(text)
    return counts, event, text


def campaign_objects(event: MISPEvent) -> dict[str, object]:
    return {o.get_attributes_by_relation("campaign-id")[0].value: o
            for o in event.objects if o.name == "distillation-campaign"}


def assert_typed_as_misp_defines(event: MISPEvent) -> None:
    for obj in event.objects:
        for a in obj.attributes:
            assert a.type in DESCRIBE["types"], (obj.name, a.object_relation, a.type)
            assert a.type in DESCRIBE["category_type_mappings"][a.category], (a.object_relation, a.category, a.type)
            if obj.name == "distillation-campaign":
                assert a.type == misp.TEMPLATE["attributes"][a.object_relation]["misp-attribute"]


def test_event_loads_back_with_its_tags_and_every_campaign(scanned, tmp_path):
    counts, event, text = export(scanned.scan_dir, tmp_path / "event.json")
    jsonschema.validate(json.loads(text), EVENT_SCHEMA)
    scan = ScanDir(scanned.scan_dir)
    assert {t.name for t in event.tags} == {"tlp:amber", GALAXY}
    assert event.date.isoformat() == scan.meta["as_of"][:10] and event.Orgc.name == PRODUCER
    assert int(event.threat_level_id) == 2 and int(event.analysis) == 2 and int(event.distribution) == 0
    objects = campaign_objects(event)
    assert set(objects) == {r["campaign_id"] for r in scan.table("campaigns").to_pylist()}
    assert counts["campaigns"] == len(objects)
    assert_typed_as_misp_defines(event)

    cell = {r["campaign_id"] for r in scan.table("accounts").to_pylist() if r["account_id"] in scanned.groups["cell"]}
    (cell_id,) = cell - {None}
    relations = {a.object_relation: a for a in objects[cell_id].attributes}
    assert relations["user-agent"].value == scanned.hostile_agent  # exact, as data
    assert relations["payment-hmac"].type == "anonymised" and not relations["payment-hmac"].to_ids
    described = {r.referenced_uuid for o in event.objects if o.name == "anonymisation" for r in o.references}
    assert objects[cell_id].uuid in described


@pytest.mark.parametrize("raw", [False, True])
def test_no_customer_identifier_leaves(scanned, scanned_raw_ips, tmp_path, raw):
    world = scanned_raw_ips if raw else scanned
    _, event, text = export(world.scan_dir, tmp_path / "event.json")
    found = "\n".join(strings(json.loads(text)))
    assert not sorted(v for v in customer_values(world, ips=not raw) if v in found)
    assert raw or not [a for o in event.objects for a in o.attributes if a.type.startswith("ip-")]


def test_every_form_of_value(tmp_path):
    counts, event, text = export(write_scan(tmp_path / "scan", raw_ips=True), tmp_path / "event.json")
    assert_typed_as_misp_defines(event)
    values = {(a.object_relation, a.type, a.value, a.to_ids)
              for a in campaign_objects(event)["campaign-forms"].attributes if a.category != "Other"}
    card = "hmac-sha256:" + hmac.new(KEY, f"payment:{CARD}".encode(), hashlib.sha256).hexdigest()
    assert values == {
        ("client-ip", "ip-src", "203.0.113.7", True),
        ("client-ip", "ip-src", "2001:db8::7", True),
        ("signup-ip", "ip-src", "198.51.100.9", True),
        ("asn", "AS", "64500", False),
        ("user-agent", "user-agent", AGENT, False),
        ("tls-ja3", "ja3-fingerprint-md5", JA3, False),
        ("tls-ja4", "text", JA4, False),
        ("tls", "text", "some-other-fingerprint", False),
        ("payment-hmac", "anonymised", card, False),
    }
    assert counts["indicators"] == 9 and counts["keyed"] == 1
    assert text.isascii()  # the agent's bidi override and accents arrive as JSON escapes, never raw
    assert "catchall.example" not in text and "192.0.2.1" not in text and "192.0.2.2" not in text
    bare = campaign_objects(event)["campaign-bare"]
    assert {a.object_relation for a in bare.attributes} >= {"description", "accounts", "exchanges", "reason"}
    (anonymisation,) = [o for o in event.objects if o.name == "anonymisation"]
    assert anonymisation.get_attributes_by_relation("keyed-hash-function")[0].value == "hmac-sha256"
    assert [r.referenced_uuid for r in anonymisation.references] == [campaign_objects(event)["campaign-forms"].uuid]


def test_keyed_addresses_are_anonymised(tmp_path):
    _, event, text = export(write_scan(tmp_path / "scan", raw_ips=False), tmp_path / "event.json")
    attributes = [a for a in campaign_objects(event)["campaign-forms"].attributes]
    assert not [a for a in attributes if a.type == "ip-src"] and "203.0.113.7" not in text
    digest = hmac.new(KEY, b"ip:2001:db8::7", hashlib.sha256).hexdigest()
    (address,) = [a for a in attributes if a.value == f"hmac-sha256:{digest}"]
    assert (address.object_relation, address.type, address.to_ids) == ("client-ip-hmac", "anonymised", False)
    assert "00112233aabbccdd" in address.comment  # the key id a partner checks before hashing


def test_same_scan_same_bytes(scanned, tmp_path):
    misp.write_misp(scanned.scan_dir, tmp_path / "a.json", producer=PRODUCER)
    misp.write_misp(scanned.scan_dir, tmp_path / "b.json", producer=PRODUCER)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_tlp_level_is_configurable(tmp_path):
    _, event, _ = export(write_scan(tmp_path / "scan"), tmp_path / "event.json", tlp="red")
    assert {t.name for t in event.tags} == {"tlp:red", GALAXY}


def test_policy_types_are_misp_types():
    misp.check_types()  # also run at import: every type and category of sharing.yaml is MISP's
    for spec in misp.TEMPLATE["attributes"].values():
        assert spec["misp-attribute"] in DESCRIBE["types"]
    bad = load_policy()
    kinds = dict(bad.kinds) | {"asn": dataclasses.replace(bad.kinds["asn"], misp_type="asn-number")}
    with pytest.raises(ValueError, match="asn-number"):
        misp.check_types(dataclasses.replace(bad, kinds=kinds))
    galaxy = load_policy().technique["misp_galaxy"]
    assert (galaxy["type"], galaxy["value"]) == ("mitre-atlas-attack-pattern", "Extract ML Model")
