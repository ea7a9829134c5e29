"""`countwatch replay` and `countwatch convert-kpu2024` handlers: exit codes and config."""
from __future__ import annotations

import json
from types import SimpleNamespace

from monitor.evaluation.builders import T0, at, ok
from monitor.evaluation.kpu2024 import run_convert
from monitor.model import Poll
from monitor.recording import poll_to_record
from monitor.replay import run


def write(path, polls):
    path.write_text("".join(json.dumps(poll_to_record(p)) + "\n" for p in polls))


def test_a_bad_recording_line_is_skipped_and_named(tmp_path, capsys):
    recording = tmp_path / "rec.jsonl"
    recording.write_text(json.dumps(poll_to_record(ok(T0, 5))) + "\n{not json\n")
    assert run(SimpleNamespace(file=str(recording), config=None)) == 0
    assert "skipped 1 bad recording line(s) of 2; the first:" in capsys.readouterr().err


def test_a_file_without_one_recording_line_is_bad_usage(tmp_path, capsys):
    recording = tmp_path / "rec.jsonl"
    recording.write_text("{not json\n[1, 2]\n")
    assert run(SimpleNamespace(file=str(recording), config=None)) == 2
    assert "rec.jsonl:1" in capsys.readouterr().err


def test_a_missing_recording_is_bad_usage(tmp_path, capsys):
    assert run(SimpleNamespace(file=str(tmp_path / "nope.jsonl"), config=None)) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_bad_config_is_bad_usage(tmp_path, capsys):
    recording = tmp_path / "rec.jsonl"
    write(recording, [ok(T0, 5)])
    config = tmp_path / "bad.toml"
    config.write_text('[detection]\nstall_prior = "soon"\n')
    assert run(SimpleNamespace(file=str(recording), config=str(config))) == 2
    assert "detection.stall_prior" in capsys.readouterr().err


def test_the_config_detection_options_apply(tmp_path, capsys):
    recording = tmp_path / "rec.jsonl"
    write(recording, [ok(at(0), 5), ok(at(1800), 5), ok(at(3600), 5)])
    config = tmp_path / "countwatch.toml"
    config.write_text('[[sources]]\nname = "src"\nkind = "sirekap"\nurl = "https://x.example/ppwp.json"\n'
                      'detection = { stall_prior = "30m" }\n')
    assert run(SimpleNamespace(file=str(recording), config=str(config))) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # The source's own prior of 30 min instead of the default 2 h.
    assert [(e["rule"], e["state"], e["at"]) for e in events][:1] == [("stall", "firing", "2024-02-20T00:30:00Z")]


def test_a_stall_is_called_at_the_304_that_reaches_its_threshold(tmp_path, capsys):
    """A daemon's recording keeps its 304s: replay calls the stall when the daemon did, not
    at the next document that happened to change."""
    recording = tmp_path / "rec.jsonl"
    config = tmp_path / "countwatch.toml"
    config.write_text('[detection]\nstall_prior = "30m"\n\n[[sources]]\nname = "src"\nkind = "sirekap"\n'
                      'url = "https://x.example/ppwp.json"\n')
    unchanged = [Poll("src", "0", at(600 * k), "not_modified") for k in range(1, 12)]   # every 10 min
    write(recording, [ok(at(0), 5), *unchanged, ok(at(7200), 6)])
    assert run(SimpleNamespace(file=str(recording), config=str(config))) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    stall = [(e["state"], e["at"]) for e in events if e["rule"] == "stall"]
    # Fires at the first poll 30 min after the last advance, resolves at the advance.
    assert stall[0] == ("firing", "2024-02-20T00:30:00Z")
    assert stall[-1] == ("resolved", "2024-02-20T02:00:00Z")


def test_convert_writes_the_recording(tmp_path):
    out = tmp_path / "rec.jsonl"
    assert run_convert(SimpleNamespace(csv=None, output=str(out))) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 1771 and json.loads(lines[0])["published_at"] == "2024-02-17T19:30:11+07:00"
    assert run_convert(SimpleNamespace(csv=str(tmp_path / "missing.csv"), output=str(out))) == 2
