"""``dane-monitor rollover plan|status`` through a real key rollover in the world (issue 17).

One MX host with DANE-EE ``3 1 1`` for today's key, a primary and a secondary name server,
the TLSA TTL shortened to 1 s (so the wait is 2 s): the next key's record is published (first
while the secondary still serves the old RRset), waited for, the next certificate deployed,
the old record removed; at each step ``plan`` and ``status`` are run as a user runs them, and
``check`` confirms DANE senders never stop authenticating the host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dane_monitor import tlsa as T
from dane_monitor.cli import main
from dane_monitor.world import Host, NameServer, Record, Scenario, World
from dane_monitor.world.changes import deploy, publish_tlsa

ROOT = Path(__file__).resolve().parents[1]
TTL = 1  # the TLSA TTL during the rollover: the wait is 2 s
DEADLINE = 60.0  # generous: how long the wait may take to pass on a loaded machine


@pytest.fixture
def world(dane_world_factory) -> World:
    sc = Scenario(
        "rollover",
        "a DANE-EE host mid-rollover",
        hosts=(Host("mx1", tlsa=(Record(3, 1, 1, "leaf"),)),),
        nameservers=(NameServer(),),
    )
    w = dane_world_factory([sc])
    host = w.domains["rollover"].hosts[0]
    publish_tlsa(w, host, host.tlsa_rdatas, ttl=TTL)
    return w


class Run:
    def __init__(self, world: World, tmp_path: Path, capsys) -> None:
        self.world, self.capsys = world, capsys
        self.host = world.domains["rollover"].hosts[0]
        self.name = self.host.name.rstrip(".")
        anchor = world.write_trust_anchor(tmp_path / "anchor.ds")
        dns_host, port = world.dns_address
        self.dns = ["--resolver", f"{dns_host}:{port}", "--trust-anchor", str(anchor)]
        self.smtp = ["--connect-port", str(world.smtp_port), "--timeout", "5"]
        self.ns = ["--nameserver-port", str(world.dns_port)]
        self.state = tmp_path / "state" / "rollover.json"
        self.next_chain = world.pki("ecdsa").issue([self.name])
        self.cert, self.key = self.next_chain.write(tmp_path)
        self.next311 = T.rdata_text(self.next_chain.leaf, 3, 1, 1)
        self.current311 = self.host.tlsa_rdatas[0]
        self.secondary = world.nameservers(world.domains["rollover"].name)[1].address

    def __call__(self, action: str, *extra: str) -> tuple[int, str]:
        self.capsys.readouterr()
        code = main(["rollover", action, "--mx", self.name, "--next-cert", str(self.cert),
                     "--state", str(self.state), *self.dns, *self.smtp, *self.ns,
                     *extra])  # fmt: skip
        return code, self.capsys.readouterr().out

    def json(self, action: str) -> tuple[int, dict]:
        code, out = self(action, "--json")
        return code, json.loads(out)

    def check(self) -> int:
        self.capsys.readouterr()
        code = main(["check", "--mx", self.name, *self.dns, *self.smtp, "--no-nameservers"])
        self.capsys.readouterr()
        return code

    def publish(self, *rdatas: str, lagging: tuple[str, ...] = ()) -> None:
        publish_tlsa(self.world, self.host, rdatas, ttl=TTL, lagging=lagging)


@pytest.fixture
def run(world, tmp_path, capsys) -> Run:
    return Run(world, tmp_path, capsys)


def test_a_rollover_walked_stage_by_stage(run: Run):
    # Before: only today's key is published.
    code, plan = run.json("plan")
    assert code == 0
    assert plan["stage"] == 1
    assert plan["publish"] == [run.next311]
    # The next certificate comes from the served chain's CA: its 2 1 1 is the alternative.
    intermediate = T.rdata_text(run.host.endpoints[0].chains[0].intermediate, 2, 1, 1)
    assert plan["alternative"] == [intermediate]
    assert plan["remove"] == [run.current311]
    assert plan["ttl"] == TTL and plan["wait_seconds"] == 2 * TTL
    assert "RFC 7671 §8.1" in plan["wait_rule"]
    code, text = run("plan")
    assert f"IN TLSA {run.next311}" in text and "after deploying, remove" in text
    code, text = run("status")
    assert code == 2 and text.startswith("stage 1/6: publish")
    assert run.next311 in text

    # Published on the primary; the secondary still serves the old RRset (no transfer yet).
    run.publish(run.current311, run.next311, lagging=(run.secondary,))
    code, status = run.json("status")
    assert (code, status["stage"], status["stage_name"]) == (1, 2, "propagating")
    lag = [s for s in status["nameservers"] if not s["has_next"]]
    assert [s["address"] for s in lag] == [run.secondary]
    assert not status["safe_to_deploy"]
    assert run.check() == 0

    # On every server: the wait starts now (nothing seen before), then passes.
    run.publish(run.current311, run.next311)
    code, text = run("status")
    assert code == 1 and text.startswith("stage 3/6: wait")
    assert "unknown, first seen now" in text
    first = json.loads(run.state.read_text())["first_seen"]
    assert len(first) == 1
    deadline = time.monotonic() + DEADLINE
    while True:
        code, status = run.json("status")
        if code == 0 or time.monotonic() > deadline:
            break
        assert status["stage"] == 3 and not status["first_seen_now"]
        time.sleep(0.2)  # a poll interval, not a wait for something to happen
    assert (code, status["stage"], status["safe_to_deploy"]) == (0, 4, True)
    assert status["visible_since"] == pytest.approx(next(iter(first.values())))
    assert status["remove"] == [run.current311]
    assert run.check() == 0

    # Deployed: the server presents the next key; the old record is left to remove.
    deploy(run.host, [run.next_chain])
    assert run.check() == 0
    code, text = run("status")
    assert code == 2 and text.startswith("stage 5/6")
    assert T.TLSARecord.from_text(run.current311).short in text
    code, plan = run.json("plan")
    assert code == 0 and plan["publish"] == [] and plan["remove"] == [run.current311]

    # Cleaned up: done, and the state forgets the host.
    run.publish(run.next311)
    code, text = run("status")
    assert code == 0 and text.startswith("stage 6/6: done")
    assert json.loads(run.state.read_text())["first_seen"] == {}
    assert run.check() == 0


def test_the_issuer_record_lets_the_next_certificate_through(run: Run):
    """The plan's alternative: a 2 1 1 for the CA, when the next certificate is from it."""
    intermediate = T.rdata_text(run.host.endpoints[0].chains[0].intermediate, 2, 1, 1)
    run.publish(run.current311, intermediate)
    code, status = run.json("status")
    assert (code, status["stage"]) == (1, 3)
    assert status["covering"] == [intermediate]
    # The 2 1 1 stays after the deployment: it takes the next key.
    assert status["remove"] == [run.current311]


def test_a_deployed_key_without_its_record_is_broken(run: Run):
    deploy(run.host, [run.next_chain])
    code, text = run("status")
    assert code == 2 and text.startswith("stage 1/6")
    assert "DANE senders defer now" in text and run.next311 in text
    assert run.check() == 2


def test_the_next_key_alone(run: Run, tmp_path):
    code, _ = run("plan", "--next-key", "x")  # both given
    assert code == 3
    run.capsys.readouterr()
    code = main(["rollover", "plan", "--mx", run.name, "--next-key", str(run.key), *run.dns,
                 *run.smtp, *run.ns, "--json"])  # fmt: skip
    plan = json.loads(run.capsys.readouterr().out)
    assert code == 0 and plan["publish"] == [run.next311] and plan["alternative"] == []


def test_a_key_type_added_keeps_the_other_type_s_record(run: Run, tmp_path):
    """An RSA certificate beside the served ECDSA one: publish its record, remove nothing."""
    rsa = run.world.pki("rsa").issue([run.name])
    cert, _ = rsa.write(tmp_path)
    run.capsys.readouterr()
    code = main(["rollover", "plan", "--mx", run.name, "--next-cert", str(cert), *run.dns,
                 *run.smtp, *run.ns, "--json"])  # fmt: skip
    plan = json.loads(run.capsys.readouterr().out)
    assert code == 0
    assert plan["publish"] == [T.rdata_text(rsa.leaf, 3, 1, 1)]
    assert plan["remove"] == [] and plan["alternative"] == []


def test_usage_errors(run: Run, tmp_path, capsys):
    code = main(["rollover", "status", "--mx", run.name])
    assert code == 3
    assert "one of --next-cert FILE and --next-key FILE" in capsys.readouterr().err
    code = main(["rollover", "status", "--mx", run.name, "--next-cert", str(run.key)])
    assert code == 3
    assert "private key" in capsys.readouterr().err
    code = main(["rollover", "plan", "--mx", run.name, "--next-cert", str(run.cert),
                 "--port", "25", "--port", "465"])  # fmt: skip
    assert code == 3
    assert "one --port at a time" in capsys.readouterr().err


# -- the rollover-readiness finding (check) ------------------------------------------------------

OTHER_CA = None


def _other_ca_record() -> str:
    """A 2 1 1 for a CA that issued nothing the world's servers send."""
    from dane_monitor.world import PKI

    global OTHER_CA
    if OTHER_CA is None:
        OTHER_CA = T.rdata_text(PKI().issue(["x.invalid"]).intermediate, 2, 1, 1)
    return OTHER_CA


READINESS = {
    # name: (records, whether tlsa-no-rollover is said, what its message must say)
    "ee-and-issuer": ((Record(3, 1, 1, "leaf"), Record(2, 1, 1, "intermediate")), True,
                      "unknown here"),
    "ee-and-other-ca": ((Record(3, 1, 1, "leaf"),), True, "a CA that issued nothing"),
    "ee-two-digests": ((Record(3, 1, 1, "leaf"), Record(3, 1, 2, "leaf")), True,
                       "matches the current key"),
    "ee-and-next": ((Record(3, 1, 1, "leaf"), Record(3, 1, 1, "unrelated")), False, ""),
    "ta-only": ((Record(2, 1, 1, "intermediate"),), False, ""),
}  # fmt: skip


@pytest.fixture(scope="module")
def readiness_world(dane_world_factory) -> World:
    scenarios = []
    for name, (records, _, _) in READINESS.items():
        if name == "ee-and-other-ca":
            records = (*records, Record(rdata=_other_ca_record()))
        scenarios.append(Scenario(name, name, hosts=(Host("mx1", tlsa=records),)))
    return dane_world_factory(scenarios)


@pytest.mark.parametrize("name", list(READINESS))
def test_what_counts_as_a_rollover(readiness_world: World, tmp_path, capsys, name):
    """A record that lets the next key through without a new record counts; the current
    key's record under another matching type, a 2 1 1 for a CA the server does not use, and
    the issuer's 2 1 1 beside the current key's 3 1 1 (the next CA is unknown) do not."""
    _, said, message = READINESS[name]
    anchor = readiness_world.write_trust_anchor(tmp_path / "anchor.ds")
    host, port = readiness_world.dns_address
    code = main(["check", "--json", "--mx", f"mx1.{name}.example", "--resolver", f"{host}:{port}",
                 "--trust-anchor", str(anchor), "--connect-port", str(readiness_world.smtp_port),
                 "--no-nameservers"])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    found = [f for h in out["hosts"] for f in h["findings"] if f["code"] == "tlsa-no-rollover"]
    assert bool(found) == said, found
    if said:
        assert message in found[0]["message"]
    stale = {f["record"] for h in out["hosts"] for f in h["findings"]
             if f["code"] == "tlsa-stale-record"}  # fmt: skip
    if name == "ee-and-other-ca":
        assert stale == {_other_ca_record()}
    if name == "ee-two-digests":
        assert stale == set()  # the SHA2-512 twin of the current key is no stale record


# -- the renewal hooks in docs/hooks -------------------------------------------------------------

HOOKS = {
    "certbot": ("certbot-dane-deploy-hook.sh", lambda d: {"RENEWED_LINEAGE": str(d)}),
    "acme.sh": ("acme-sh-dane-reload.sh", lambda d: {
        "CERT_FULLCHAIN_PATH": str(d / "fullchain.pem"), "CERT_KEY_PATH": str(d / "privkey.pem"),
    }),
}  # fmt: skip


@pytest.mark.parametrize("hook", list(HOOKS))
def test_a_renewal_hook_deploys_only_what_dane_senders_accept(run: Run, tmp_path, hook):
    """The hook as certbot / acme.sh runs it after a renewal: it refuses the new key until
    its record is published, waits (exit 75) while the record propagates, then deploys once
    and reloads; run again, it does nothing."""
    script, renewal_env = HOOKS[hook]
    renewed, deployed = tmp_path / "renewed", tmp_path / "deployed"
    renewed.mkdir()
    deployed.mkdir()
    (renewed / "fullchain.pem").write_bytes(run.next_chain.chain_pem())
    (renewed / "privkey.pem").write_bytes(run.next_chain.key_pem)
    current = run.host.endpoints[0].chains[0]
    (deployed / "fullchain.pem").write_bytes(current.chain_pem())
    reloads = tmp_path / "reloads"
    env = {
        **os.environ,
        **renewal_env(renewed),
        "DANE_MX_HOST": run.name,
        "DANE_DEPLOY_DIR": str(deployed),
        "DANE_RELOAD": f"echo reload >> {reloads}",
        "DANE_MONITOR": f"{sys.executable} -m dane_monitor",
        "DANE_DNS_OPTS": " ".join(run.dns),
        "DANE_ROLLOVER_OPTS": " ".join([*run.smtp, *run.ns, "--state", str(run.state)]),
    }

    def run_hook() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", str(ROOT / "docs" / "hooks" / script)], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    p = run_hook()
    assert p.returncode == 1, p.stderr
    assert run.next311 in p.stdout  # the record to publish first
    assert not reloads.exists()
    assert (deployed / "fullchain.pem").read_bytes() == current.chain_pem()

    run.publish(run.current311, run.next311)
    p = run_hook()
    assert p.returncode == 75, p.stdout + p.stderr
    assert "stage 3/6" in p.stdout and not reloads.exists()
    deadline = time.monotonic() + DEADLINE
    while p.returncode == 75 and time.monotonic() < deadline:
        time.sleep(0.2)  # a poll interval
        p = run_hook()
    assert p.returncode == 0, p.stdout + p.stderr
    assert reloads.read_text() == "reload\n"
    assert (deployed / "fullchain.pem").read_bytes() == run.next_chain.chain_pem()
    assert (deployed / "privkey.pem").read_bytes() == run.next_chain.key_pem
    deploy(run.host, [run.next_chain])  # what the reload does to the mail server
    assert run.check() == 0

    p = run_hook()
    assert p.returncode == 0 and "already has this certificate" in p.stdout
    assert reloads.read_text() == "reload\n"


def test_the_docs_list_each_stage_with_its_exit_code():
    from dane_monitor import rollover

    doc = (ROOT / "docs" / "rollover.md").read_text()
    rows = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and cells[0].isdigit():
            rows[int(cells[0])] = (cells[1].strip("`"), int(cells[3]))
    assert rows == {n: (name, rollover.EXIT[n]) for n, name in rollover.STAGES.items()}


def test_without_a_ttl_seen_it_is_never_safe_to_deploy(run: Run, monkeypatch):
    """No TTL seen anywhere gives no wait to count: status must not call that 'safe'."""
    from dane_monitor import rollover

    monkeypatch.setattr(rollover, "wait_rule", lambda obs: (None, None, "the TTLs could not "
                        "be seen: wait at least twice the TLSA TTL"))  # fmt: skip
    run.publish(run.current311, run.next311)
    for _ in range(2):  # and not on a later run either, when the state file knows the record
        code, status = run.json("status")
        assert (code, status["stage"], status["safe_to_deploy"]) == (1, 3, False)
        assert "twice the TLSA TTL" in status["headline"]


def test_a_damaged_state_file_starts_the_wait_afresh(tmp_path):
    from dane_monitor.rollover import load_state

    path = tmp_path / "rollover.json"
    for text in ('{"first_seen": {"mx|25|r": -Infinity, "nan": NaN, "yes": true}}',
                 '{"first_seen": [1]}', "[]", "not json"):  # fmt: skip
        path.write_text(text)
        assert load_state(path) == {}
    path.write_text('{"first_seen": {"mx|25|r": 1700000000}}')
    assert load_state(path) == {"mx|25|r": 1700000000.0}
