"""The exporter stays healthy while it probes a KeyTrap zone (issue 11 item 8).

The exporter runs in this test's event loop; the HTTP requests come from other threads, so
an event loop blocked by validation could answer neither. The probe is started first; once
the world's DNS server has heard from it (the probe is under way), ``/-/healthy`` is asked:
its answer must come back before the probe's, and the probe must end bogus with the reason
``validation-budget``. How long each takes is measured by ``benchmarks/keytrap.py``.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request

from test_exporter_app import config_text, samples, start, value  # noqa: F401 - start: fixture

from dane_monitor.world import World

GENEROUS = 120.0  # seconds: a deadline for a stuck exporter, not a speed requirement


async def test_health_answers_while_a_keytrap_probe_runs(
    dane_world: World,
    dane_trust_anchor,
    start,  # noqa: F811 - pytest fixture injection
):
    exporter = await start(
        config_text(dane_world, dane_trust_anchor, [], probe="{allow: ['*.example']}")
    )
    target = dane_world.domains["keytrap"].name.rstrip(".")
    answered: list[str] = []

    def get(path: str) -> str:
        with urllib.request.urlopen(exporter.url + path, timeout=GENEROUS) as reply:
            body = reply.read().decode()
        answered.append(path.split("?")[0])
        return body

    assert dane_world.dns is not None
    before = dane_world.dns.query_count  # nothing else asks: no targets, no cycles
    probe = asyncio.ensure_future(asyncio.to_thread(get, f"probe?target={target}"))
    deadline = time.monotonic() + GENEROUS
    while dane_world.dns.query_count == before:  # the probe is under way
        assert not probe.done() and time.monotonic() < deadline
        await asyncio.sleep(0.001)
    health = await asyncio.wait_for(asyncio.to_thread(get, "-/healthy"), GENEROUS)
    text = await asyncio.wait_for(probe, GENEROUS)

    assert health == "Healthy\n"
    assert answered == ["-/healthy", "probe"]
    assert value(text, "dane_probe_success") == 1  # a verdict was reached
    assert value(text, "dane_verdict", target=target, verdict="bogus") == 1
    reasons = {
        labels["reason"]
        for name, labels, v in samples(text)
        if name == "dane_dns_failure" and labels["target"] == target and v == 1
    }
    assert "validation-budget" in reasons, text
