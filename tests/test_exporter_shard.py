"""Several background exporters share one target file: ``shard: I/N`` (or ``serve --shard``).

1. Three ``dane-monitor serve`` processes given ``--shard 0/3``, ``1/3`` and ``2/3`` of one
   file listing every domain of the test world: each target's results are on exactly one
   exporter's /metrics and landing page, together all of them; a reload keeps the shard.
2. The split is Prometheus's own ``hashmod``: the vectors of Prometheus's relabel tests,
   the algorithm computed here independently, and (when ``prometheus`` is installed) the
   labels a real Prometheus computes for the world's names.
3. The ``shard`` key: parsed, refused with its line, targets outside the shard still
   configured for /probe.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import signal
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_exporter_app import config_text
from test_exporter_prometheus import (  # noqa: F401 - prometheus_bin: a fixture
    Prometheus,
    prometheus_bin,
    start_process,
    stop_process,
)

from dane_monitor.cli import main
from dane_monitor.exporter.config import ConfigError, parse
from dane_monitor.exporter.shard import Shard, hashmod, parse_shard

HANG_GUARD = 120.0  # seconds: a deadline for stuck exporters on a busy machine, not a speed test


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return reply.read().decode()


def metric_targets(text: str) -> set[str]:
    """The ``target`` labels of every series on a /metrics page."""
    return {
        s.labels["target"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if "target" in s.labels
    }


def gauge(text: str, name: str) -> float:
    """The sum of a family's samples (all labels)."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    )


def metrics_after_a_cycle(url: str) -> str:
    deadline = time.monotonic() + HANG_GUARD
    while True:
        text = get(url + "metrics")
        if gauge(text, "dane_exporter_cycles_total") >= 1:
            return text
        assert time.monotonic() < deadline, "no complete cycle:\n" + text
        time.sleep(0.2)


def test_three_background_exporters_check_every_target_exactly_once(
    dane_world, dane_trust_anchor, tmp_path
):
    names = sorted(d.name.rstrip(".") for d in dane_world.domains.values())
    path = tmp_path / "dane.yml"
    path.write_text(config_text(dane_world, dane_trust_anchor, [f"domain: {n}" for n in names]))
    exporters = []
    try:
        for i in range(3):
            log = tmp_path / f"exporter-{i}.log"
            args = ["serve", "--config", str(path), "--shard", f"{i}/3"]
            exporters.append((*start_process(args, log, r"msg=listening url=(\S+)"), log))
        shown = []
        for _proc, _out, url, _log in exporters:
            text = metrics_after_a_cycle(url)
            mine = metric_targets(text)
            # dane_exporter_targets and the landing page count and list the shard's targets
            assert gauge(text, "dane_exporter_targets") == len(mine), url
            page = get(url)
            assert {n for n in names if f">{n}</a>" in page} == mine, url
            shown.append(mine)
        for i, mine in enumerate(shown):
            assert mine, f"shard {i}/3 is empty"  # the world's names fill all three
            for j in range(i + 1, 3):
                assert not mine & shown[j], (i, j, mine & shown[j])
        assert set().union(*shown) == set(names)

        # A reload (SIGHUP) re-reads the file and keeps the command line's --shard.
        proc, _out, url, log = exporters[0]
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + HANG_GUARD
        while "configuration reloaded" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        # the log says what this exporter checks
        assert f'msg="configuration reloaded" targets={len(shown[0])} shard=0/3' in (
            log.read_text()
        )
        text = get(url + "metrics")
        assert gauge(text, "dane_exporter_targets") == len(shown[0])
        assert metric_targets(text) == shown[0]
    finally:
        for proc, out, _url, _log in exporters:
            stop_process(proc, out)


def test_the_split_is_prometheus_hashmod():
    # The HashMod vectors of Prometheus's model/relabel/relabel_test.go (modulus 1000).
    assert hashmod("baz", 1000) == 976
    assert hashmod("foo\nbar", 1000) == 734
    # The algorithm of model/relabel/relabel.go computed independently: the MD5 of the label
    # value, its last 8 bytes as a big-endian uint64, modulo N.
    for name in ("good-ee.example", "xn--bcher-kva.example", "mx1.example.org", "Ä.example"):
        (last,) = struct.unpack(">Q", hashlib.md5(name.encode()).digest()[8:])
        for n in (1, 2, 3, 7, 1000):
            assert hashmod(name, n) == last % n
            assert [Shard(i, n).holds(name) for i in range(n)].count(True) == 1


def test_a_real_prometheus_puts_each_name_in_the_same_shard(
    prometheus_bin,  # noqa: F811 - pytest fixture injection
    dane_world,
    tmp_path,
):
    names = sorted(d.name.rstrip(".") for d in dane_world.domains.values())
    prom = Prometheus(
        prometheus_bin,
        tmp_path,
        f"""scrape_configs:
  - job_name: shards
    scrape_interval: 1h
    static_configs: [{{targets: {json.dumps(names)}}}]
    relabel_configs:
      - {{source_labels: [__address__], target_label: target}}
      - {{source_labels: [target], modulus: 3, target_label: shard, action: hashmod}}
""",
    )
    try:
        deadline = time.monotonic() + HANG_GUARD
        while True:
            data = json.loads(get(prom.url + "/api/v1/targets?state=active"))["data"]
            labels = [t["labels"] for t in data["activeTargets"]]
            if len(labels) == len(names) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        theirs = {lab["target"]: int(lab["shard"]) for lab in labels}
        assert theirs == {n: hashmod(n, 3) for n in names}
    finally:
        prom.stop()


def test_the_shard_key():
    targets = "targets: [{domain: a.example}, {domain: b.example}, {mx: mx.c.example}]\n"
    assert parse(targets).shard is None
    assert parse(targets).scheduled_targets() == parse(targets).targets
    parts = [parse(f"shard: {i}/2\n" + targets).scheduled_targets() for i in range(2)]
    assert parse("shard: 1/2\n").shard == Shard(1, 2)
    assert sorted(t.name for p in parts for t in p) == ["a.example", "b.example", "mx.c.example"]
    assert parse("shard: 0/1\n" + targets).scheduled_targets() == parse(targets).targets
    for bad, why in [("3/3", "I from 0 to N-1"), ("1/0", "N at least 1"), ("1", "a shard is I/N"),
                     ("[0, 3]", "a single value"), ("-1/3", "a shard is I/N")]:  # fmt: skip
        with pytest.raises(ConfigError, match=re.escape("<config>:2: ") + ".*" + re.escape(why)):
            parse(f"listen: 127.0.0.1:0\nshard: {bad}\n")


def test_targets_outside_the_shard_may_still_be_probed():
    config = parse(
        "shard: 0/3\ntargets: [" + ", ".join(f"{{domain: d{i}.example}}" for i in range(12)) + "]\n"
    )
    outside = [t for t in config.targets if t not in config.scheduled_targets()]
    assert outside
    for target in outside:
        assert config.probe_refusal(target.name, (25,)) is None
    assert config.probe_refusal("elsewhere.example", (25,)) is not None


def test_serve_shard_flag(tmp_path, capsys):
    cfg = tmp_path / "dane.yml"
    cfg.write_text("shard: 0/2\ntargets: [{domain: a.example}, {domain: b.example}]\n")
    assert main(["serve", "--config", str(cfg), "--check-config"]) == 0
    held = sum(Shard(0, 2).holds(n) for n in ("a.example", "b.example"))
    assert f"OK: 2 targets (2 domains, 0 MX hosts), shard 0/2: {held} checked here" in (
        capsys.readouterr().out
    )
    assert main(["serve", "--config", str(cfg), "--check-config", "--shard", "1/2"]) == 0
    assert f"shard 1/2: {2 - held} checked here" in capsys.readouterr().out
    assert main(["serve", "--config", str(cfg), "--shard", "2/2"]) == 3
    assert "argument --shard: a shard is I/N with N at least 1 and I from 0 to N-1, not 2/2" in (
        capsys.readouterr().err
    )
    assert parse_shard(" 1 / 4 ") == Shard(1, 4)


def test_the_docs_give_the_relabeling_that_reproduces_the_split():
    docs = (Path(__file__).parent.parent / "docs" / "exporter.md").read_text()
    section = docs[docs.index("### Background checks on several exporters") :]
    assert "shard: 1/3" in section and "action: hashmod" in section
    # the one-liner the docs give computes our bucket
    line = re.search(r"`(python3 -c '[^`]+)`", section)
    assert line is not None
    command = line[1].replace("python3", shlex.quote(sys.executable), 1)
    root = Path(__file__).parent.parent
    out = subprocess.run(command, shell=True, capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == str(hashmod("example.de", 3))
