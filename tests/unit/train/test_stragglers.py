"""The straggler and tiny-shard rules, on hand-made run records."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from build.train.report import summary_markdown
from build.train.stragglers import (MIN_SHARD_BATCHES, STRAGGLER_FACTOR, find_stragglers, findings,
                                    host_figures, step_time_table, tiny_shards)


def run(probes: Dict[str, List[Optional[float]]], step: float = 0.125,
        shards: Optional[Dict[str, int]] = None, batch: int = 32) -> Dict[str, Any]:
    events: List[Dict[str, Any]] = []
    for host, values in probes.items():
        for epoch, value in enumerate(values, start=1):
            events.append({"kind": "epoch", "host": host, "epoch": epoch, "step_time": step * 3 if epoch == 1 else step,
                           "compute_probe": value, "samples_per_second": 100.0, "loss": 1.0})
    for host, samples in (shards or {}).items():
        events.append({"kind": "shard", "host": host, "samples": samples, "batch": batch})
    return {"run_id": "r1", "job": "j", "workers": len(probes), "status": "succeeded", "hosts": list(probes),
            "events": events}


def test_a_host_at_1_3x_the_others_median_is_named_and_one_below_is_not() -> None:
    assert [s.host for s in find_stragglers({"a": 1.0, "b": 1.0, "c": 1.3})] == ["c"]
    assert find_stragglers({"a": 1.0, "b": 1.0, "c": 1.29}) == []
    assert STRAGGLER_FACTOR == 1.3


def test_two_hosts_compare_with_each_other_and_one_host_names_nobody() -> None:
    (slow,) = find_stragglers({"a": 1.0, "b": 1.5})
    assert slow.host == "b" and slow.others == 1.0 and abs(slow.ratio - 1.5) < 1e-9
    assert find_stragglers({"a": 5.0}) == []


def test_the_median_of_the_others_is_not_pulled_by_one_slow_host() -> None:
    figures = {"a": 1.0, "b": 1.1, "c": 0.9, "d": 1.0, "e": 3.0}
    assert [s.host for s in find_stragglers(figures)] == ["e"]
    assert [s.host for s in find_stragglers(dict(figures, f=2.0))] == ["e", "f"]


def test_steady_epochs_decide_and_the_probe_wins_over_the_synchronous_step_time() -> None:
    record = run({"h0": [9.0, 0.010, 0.010], "h1": [9.0, 0.011, 0.009], "h2": [0.01, 0.030, 0.040]})
    measure, figures = host_figures(record)
    assert measure == "compute_probe" and {h: round(v, 6) for h, v in figures.items()} == {
        "h0": 0.010, "h1": 0.010, "h2": 0.035}
    assert [s.host for s in find_stragglers(figures, measure)] == ["h2"]
    (line,) = findings(record)
    assert line.startswith("straggler: h2: own compute time") and "3.5x" in line


def test_without_a_probe_on_every_host_the_wall_step_time_is_used() -> None:
    record = run({"h0": [0.01, 0.01], "h1": [None, None]})
    measure, figures = host_figures(record)
    assert measure == "step_time" and figures == {"h0": 0.125, "h1": 0.125}
    assert findings(record) == []


def test_a_shard_under_4_batches_is_warned_about() -> None:
    record = run({"h0": [0.01], "h1": [0.01]}, shards={"h0": 4 * 32, "h1": 4 * 32 - 1})
    assert MIN_SHARD_BATCHES == 4
    (tiny,) = tiny_shards(record)
    assert (tiny.host, tiny.batches) == ("h1", 3)
    (line,) = findings(record)
    assert line.startswith("tiny shard: h1: its shard holds 127 samples = 3 batch(es) of 32")


def test_the_record_table_and_the_report_name_them() -> None:
    record = run({"h0": [0.01, 0.01], "h1": [0.01, 0.05]}, shards={"h0": 10, "h1": 10})
    table = step_time_table(record)
    assert table["h1"] == {"step_time": {"1": 0.375, "2": 0.125}, "compute_probe": {"1": 0.01, "2": 0.05}}
    json.dumps(table)
    text = summary_markdown([record], None, [])
    assert "### Hosts of `r1`" in text and "**straggler: h1:" in text and "**tiny shard: h0:" in text
    quiet = summary_markdown([run({"h0": [0.01, 0.01], "h1": [0.01, 0.011]})], None, [])
    assert "no straggler" in quiet


def test_report_prints_the_findings(tmp_path: Path, capsys) -> None:
    from build.train.report import write_report

    target = tmp_path / "r1"
    (target / "logs").mkdir(parents=True)
    record = run({"h0": [0.01, 0.01], "h1": [0.01, 0.05]})
    events = record.pop("events")
    (target / "run.json").write_text(json.dumps(record))
    (target / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    write_report("r1", tmp_path)
    assert "piforge: r1: straggler: h1:" in capsys.readouterr().out
