"""The exporter's configuration: the documented example parses, and every mistake is an error
that names the file and the line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dane_monitor.cli import main
from dane_monitor.exporter import webconfig
from dane_monitor.exporter.cli import demo_config
from dane_monitor.exporter.config import ConfigError, load, parse, parse_duration
from dane_monitor.settings import Thresholds

DOCS = Path(__file__).parent.parent / "docs" / "exporter.md"


def docs_example() -> str:
    text = DOCS.read_text()
    match = re.search(r"<!-- example-config -->\s*```yaml\n(.*?)```", text, re.S)
    assert match, "docs/exporter.md lost its example configuration"
    return match.group(1)


def test_the_documented_example_parses(tmp_path):
    anchor = tmp_path / "anchor.ds"
    anchor.write_text(". 3600 IN DS 1 8 2 " + "00" * 32 + "\n")
    text = docs_example().replace("/etc/dane-monitor/root-anchor.ds", str(anchor))
    config = parse(text, "example.yml")
    kinds = {t.kind for t in config.targets}
    assert kinds == {"domain", "mx"}
    example = {t.name: t for t in config.targets}["example.org"]
    assert example.ports == (25, 465)
    assert example.interval == 60
    assert config.probe.allow is not None
    assert config.probe.allows("mail.example.de")
    assert not config.probe.allows("evil.example.net")
    assert config.thresholds == Thresholds(3, 1, 14)


def test_defaults_and_overrides():
    config = parse(
        "defaults: {ports: [25, 587], interval: 5m, timeout: 45s}\n"
        "targets:\n"
        "  - domain: Example.DE.\n"
        "  - mx: mx.example.de\n"
        "    interval: 1h\n"
        "    ports: 25\n"
    )
    a, b = config.targets
    assert (a.name, a.kind, a.ports, a.interval, a.timeout) == (
        "Example.DE",
        "domain",
        (25, 587),
        300,
        45,
    )
    assert (b.kind, b.ports, b.interval, b.line) == ("mx", (25,), 3600, 4)
    assert config.listen == "127.0.0.1:9925"
    assert parse("").targets == ()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30), (1.5, 1.5), ("90s", 90), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5)],
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["", "5x", "-3", 0, -1, "m", True, "1m1h", float("nan"), float("inf"), "nan"]
)
def test_bad_durations(value):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


BAD = [
    ("targets:\n  - domain: a.example\n    intervall: 5m\n", 3, "did you mean 'interval'"),
    ("listen: 127.0.0.1\n", 1, "HOST:PORT"),
    ("targets:\n  - domian: a.example\n", 2, "unknown key 'domian'"),
    ("targets:\n  - domain: a.example\n    mx: b.example\n", 2, "either"),
    ("targets:\n  - domain: a.example\n  - domain: A.example.\n", 3, "twice (first on line 2)"),
    ("targets:\n  - domain: a.example\n    ports: [25, 70000]\n", 3, "1 to 65535"),
    ("targets:\n  - domain: 'not a name'\n", 2, "not a domain or host name"),
    ("concurrency: 0\n", 1, "at least 1"),
    ("jitter: 1.5\n", 1, "fraction"),
    ("dns:\n  validation: maybe\n", 2, "local or resolver"),
    ("dns:\n  resolver: 'not an address'\n", 2, "resolver"),
    ("dns:\n  trust_anchor: /nonexistent/anchor\n", 2, "no such file"),
    ("targets: [\n  {domain: a.example\n", 3, "not valid YAML"),
    ("targets:\n  domain: a.example\n", 2, "must be a list"),
    ("probe:\n  timeout: fast\n", 2, "duration"),
    ("probe:\n  allow_any: yes please\n", 2, "true or false"),
    ("probe:\n  ports: [2525]\n", 2, "port 2525 is not in probe.allowed_ports (25, 465, 587)"),
    ("probe:\n  allowed_ports: [587]\n", 2, "port 25 is not in probe.allowed_ports (587)"),
    ("- just\n- a list\n", 1, "must be a mapping"),
    ("targets:\n  - domain: [a, b]\n", 2, "single value"),
    ("defaults:\n  timeout: 0\n", 2, "more than 0 seconds"),
    ("dns:\n  timeout: .inf\n", 2, "duration"),
    ("ehlo_name: two words\n", 1, "cannot be sent in EHLO"),
    ("thresholds:\n  rrsig_warning: 1\n  rrsig_critical: 2\n", 2, "at most the warning"),
    ("thresholds:\n  rrsig_warnng: 1\n", 2, "did you mean 'rrsig_warning'"),
    ("thresholds:\n  cert_warning: -1\n", 2, "a number of days, 0 or more"),
    ("thresholds:\n  cert_warning: .nan\n", 2, "a number of days"),
    ("thresholds: 3\n", 1, "thresholds must be a mapping"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD, ids=[b[2] for b in BAD])
def test_bad_configurations_name_the_line(text, line, message):
    with pytest.raises(ConfigError) as info:
        parse(text, "dane.yml")
    assert str(info.value).startswith(f"dane.yml:{line}: "), str(info.value)
    assert message in str(info.value)


def test_probe_refusals():
    config = parse(
        "targets:\n  - domain: Mail.Example.DE\n    ports: [25, 2525]\n"
        "probe:\n  allow: ['*.example.org']\n"
    )
    assert config.probe_refusal("mail.example.de.", (2525,)) is None  # its own port
    assert config.probe_refusal("a.example.org", (465,)) is None
    assert "port 2525" in (config.probe_refusal("a.example.org", (25, 2525)) or "")
    assert "neither a configured target" in (config.probe_refusal("localhost", (25,)) or "")
    assert parse("").probe_refusal("anything.example", (25,)) is not None  # deny by default
    anything = parse("probe: {allow_any: true}")
    assert anything.probe_refusal("anything.example", (587,)) is None
    assert anything.probe_refusal("anything.example", (22,)) is not None


def test_thresholds():
    config = parse("thresholds:\n  rrsig_warning: 7\n  rrsig_critical: 2.5\n  cert_warning: 0\n")
    assert config.thresholds == Thresholds(7, 2.5, 0)
    assert config.thresholds.options() == {
        "rrsig_warn_days": 7,
        "rrsig_error_days": 2.5,
        "cert_warn_days": 0,
    }
    assert parse("thresholds: {cert_warning: 30}").thresholds == Thresholds(3, 1, 30)
    assert parse("").thresholds == Thresholds()


def test_serve_flags_override_the_files_thresholds(tmp_path, capsys):
    cfg = tmp_path / "dane.yml"
    cfg.write_text("thresholds: {rrsig_warning: 5, rrsig_critical: 2}\n")
    assert main(["serve", "--config", str(cfg), "--check-config"]) == 0
    assert "signatures 5/2 days (warning/critical), certificates 14 days" in capsys.readouterr().out
    args = ["serve", "--config", str(cfg), "--check-config", "--cert-warning", "30"]
    assert main([*args, "--rrsig-critical", "4"]) == 0
    assert "signatures 5/4 days (warning/critical), certificates 30 days" in capsys.readouterr().out
    assert main([*args, "--rrsig-critical", "6"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "must be at most the warning window (5 days)" in err


def test_the_demo_writes_its_thresholds_into_its_configuration(tmp_path):
    anchor = tmp_path / "anchor.ds"
    anchor.write_text(". 3600 IN DS 1 8 2 " + "00" * 32 + "\n")

    class World:
        dns_address = ("127.0.0.1", 5353)
        smtp_port = 2525
        domains: dict = {}

    for thresholds in (Thresholds(), Thresholds(10, 4, 60)):
        text = demo_config(World(), anchor, "127.0.0.1:0", "30s", "10s", thresholds)
        assert parse(text).thresholds == thresholds


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yml")


def test_check_config_command(tmp_path, capsys):
    good = tmp_path / "good.yml"
    good.write_text("targets:\n  - domain: a.example\n  - mx: mx.a.example\n")
    assert main(["serve", "--config", str(good), "--check-config"]) == 0
    assert "OK: 2 targets (1 domains, 1 MX hosts)" in capsys.readouterr().out
    bad = tmp_path / "bad.yml"
    bad.write_text("targets:\n  - domain: a.example\n    port: 25\n")
    assert main(["serve", "--config", str(bad), "--check-config"]) == 3
    assert f"{bad}:3: unknown key 'port'" in capsys.readouterr().err


def test_check_config_reads_the_web_config(tmp_path, capsys):
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  prometheus: plaintext\n")
    cfg = tmp_path / "dane.yml"
    cfg.write_text("web_config: web.yml\n")
    assert main(["serve", "--config", str(cfg), "--check-config"]) == 3
    assert f"{web}:2: the password of 'prometheus' must be a bcrypt hash" in capsys.readouterr().err


def test_prometheus_style_flags(tmp_path, capsys):
    """--config.file, --web.listen-address, --web.config.file, --log.level, --log.format, as
    Prometheus users expect of every exporter (the short names stay)."""
    cfg = tmp_path / "dane.yml"
    cfg.write_text("targets:\n  - domain: a.example\n")
    args = ["serve", "--config.file", str(cfg), "--web.listen-address", "127.0.0.1:9999",
            "--log.level", "debug", "--log.format", "json", "--check-config"]  # fmt: skip
    assert main(args) == 0
    assert "listen 127.0.0.1:9999" in capsys.readouterr().out
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  prometheus: plaintext\n")
    args = ["serve", "--config.file", str(cfg), "--web.config.file", str(web), "--check-config"]
    assert main(args) == 3
    assert f"{web}:2: the password of 'prometheus' must be a bcrypt hash" in capsys.readouterr().err


WEB_BAD = [
    ("tls_server_config:\n  cert_file: x.pem\n", 2, "needs both cert_file and key_file"),
    ("tls_server_config:\n  cert_file: x.pem\n  key_file: y.pem\n", 2, "cannot load"),
    ("tls_server_config:\n  ciphers: [a]\n", 2, "unknown key 'ciphers'"),
    ("basic_auth_users:\n  u: $2y$10$short\n", 2, "malformed"),
    ("basic_auth_users: [u]\n", 1, "map user names"),
    ('http_server_config:\n  headers: {X-A: "a\\nb"}\n', 2, "one line"),
    (
        "tls_server_config:\n  cert_file: x.pem\n  key_file: y.pem\n"
        "  client_allowed_sans: [scraper.example]\n",
        4,
        "client_allowed_sans is not supported",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), WEB_BAD, ids=[b[2] for b in WEB_BAD])
def test_bad_web_configurations_name_the_line(tmp_path, text, line, message):
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        webconfig.load(path)
    assert str(info.value).startswith(f"{path}:{line}: "), str(info.value)
    assert message in str(info.value)
