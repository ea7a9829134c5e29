"""Region names for people (issue 13): from KPU's wilayah lists (monitor/data/wilayah), in
title case with Kab./Kota at the kab/kota level, learned names kept in the state database, the
code when nothing is known, never an error; and the names reach the messages."""
from __future__ import annotations

import json

from monitor.sources.regions import RegionNames, region_label, styled_name
from tests.fakes.events import config, stall

KINDS = {"kpu-jabar": "sirekap", "kpu-ppwp": "sirekap", "mn-sos": "json"}


def test_names_come_from_the_wilayah_lists_not_from_notes():
    names = RegionNames(KINDS)
    assert names.label("kpu-jabar", "3204") == "Kab. Bandung (3204)"
    assert names.label("kpu-jabar", "3273") == "Kota Bandung (3273)"
    assert names.label("kpu-jabar", "32") == "Jawa Barat (32)"
    assert names.name("kpu-ppwp", "1101") == "Kab. Aceh Selatan"      # the fixture notes once said Simeulue
    assert names.name("kpu-ppwp", "1109") == "Kab. Simeulue"
    assert names.name("kpu-ppwp", "110101") == "Bakongan"
    assert names.name("kpu-ppwp", "11") == "Aceh" and names.name("kpu-ppwp", "31") == "DKI Jakarta"
    assert names.name("kpu-ppwp", "99") == "Luar Negeri"


def test_unknown_regions_and_other_sources_fall_back_to_the_code():
    names = RegionNames(KINDS)
    assert names.label("kpu-jabar", "3204052003") == "3204052003"       # a desa not in the lists
    assert names.label("mn-sos", "32") == "32"                          # a json source's 32 is not Jawa Barat
    assert names.label("unknown-source", "32") == "32"
    assert region_label("0", None) == "0"
    assert styled_name("KOTA BANDUNG", 2) == "Kota Bandung" and styled_name("BANDUNG BARAT", 2) == "Kab. Bandung Barat"


def test_learned_names_are_cached_in_the_state_database(tmp_path):
    db = tmp_path / "countwatch.db"
    names = RegionNames(KINDS, db)
    names.learn("mn-sos", "27053", "HENNEPIN")
    names.learn("mn-sos", "27123", "Ramsey County")
    names.close()
    again = RegionNames(KINDS, db)
    assert again.label("mn-sos", "27053") == "Hennepin (27053)"
    assert again.label("mn-sos", "27123") == "Ramsey County (27123)"


def test_a_named_event_carries_its_name_into_the_messages(tmp_path, registry, slack, logs):
    from alerts.pipeline import AlertPipeline
    from monitor.clock import ManualClock
    from monitor.metrics import Metrics
    from tests.fakes.events import NIGHT

    names = RegionNames(KINDS)
    cfg = config(receivers=[{"name": "oncall", "kind": "slack_webhook", "url": "${HOOK_URL}"}],
                 state_dir=str(tmp_path), environ={"HOOK_URL": slack.webhook_url})
    pipeline = AlertPipeline(cfg, Metrics(registry), ManualClock(NIGHT), tmp_path / "cw.db")
    pipeline.handle([names.named(stall(region="3204")), names.named(stall(region="3273"))])
    pipeline.tick()
    sent = slack.accepted("webhook")
    assert len(sent) == 1
    assert "Kab. Bandung (3204), Kota Bandung (3273)" in sent[0].text
    blocks = json.dumps(sent[0].payload["blocks"], ensure_ascii=False)
    assert "stall Kab. Bandung (3204) [warning, new]" in blocks
    named = [line for line in logs() if line["event"] == "region.named"]
    assert {(line["region"], line["name"]) for line in named} == {("3204", "Kab. Bandung"), ("3273", "Kota Bandung")}


def test_region_info_lists_the_named_regions_a_source_exports():
    names = RegionNames(KINDS)
    below = dict(names.below("kpu-jabar", "32", 1))
    assert below["32"] == "Jawa Barat" and below["3204"] == "Kab. Bandung" and below["3273"] == "Kota Bandung"
    assert len(below) == 28 and "1101" not in below and "11" not in below      # Jawa Barat and its 27 kab/kota
    national = dict(names.below("kpu-ppwp", "0", 1))
    assert len(national) == 39 and national["99"] == "Luar Negeri"              # 38 provinces and overseas
    assert names.below("mn-sos", "0", 2) == []


def test_a_name_the_source_publishes_is_learned_styled_and_kept(tmp_path):
    db = tmp_path / "countwatch.db"
    names = RegionNames(KINDS, db)
    published = stall(source="mn-sos", region="MN", region_name="MINNESOTA, US PRESIDENT")
    assert names.named(published).details["region_name"] == "Minnesota, Us President"
    names.close()
    assert RegionNames(KINDS, db).label("mn-sos", "MN") == "Minnesota, Us President (MN)"


def test_the_detectors_pass_on_the_name_a_json_feed_gives_its_region():
    import json as json_module
    from pathlib import Path

    from monitor.detectors import Judge
    from monitor.recording import read_recording

    recording = Path(__file__).parent / "fixtures" / "external" / "mn2020" / "mn2020_sos_uspres.jsonl"
    judge, state, events = Judge(None), None, []
    for poll in read_recording(recording):
        state = state or judge.restore(poll.source, poll.region, None)
        events += judge.observe(state, poll)
    # on the events of polls that brought the document (a not_modified poll has none to name)
    named = [e for e in events if e.details.get("region_name")]
    assert named and {e.details["region_name"] for e in named} == {"Minnesota, US President"}, \
        json_module.dumps(events[0].to_json())[:300]
    # once learned, the name is given to the events whose poll brought no document
    names = RegionNames({"mn-sos-uspres": "json"})
    names.named(named[0])
    unnamed = next(e for e in events if not e.details.get("region_name"))
    assert names.named(unnamed).details["region_name"] == "Minnesota, US President"
