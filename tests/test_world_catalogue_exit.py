"""The catalogue's exit codes. ``tests/test_check_catalogue.py`` holds ``check --json`` to
every scenario's ``Expect.exit_code``; here: every hostile scenario has one, and the text
output exits with the same code (in-process ``main``, against the session's world).

The rule the hostile scenarios hold the checker to (issue 12): a server-side failure on an
MX endpoint where DANE applies — refused, hanging, garbage, reset, a greeting never finished,
STARTTLS garbage/refused/missing, a failed handshake — makes DANE senders defer mail, so it
is CRITICAL (exit 2, verdict ``failed``, sender action ``defer``), never UNKNOWN (exit 3 is
for what is wrong on the checking side).
"""

from __future__ import annotations

import pytest

from dane_monitor.cli import main
from dane_monitor.world import CATALOGUE, Behaviour, World
from dane_monitor.world.scenarios import NO_ROUTE

WITH_EXIT = [sc for sc in CATALOGUE if sc.expect.exit_code is not None]
HOSTILE = {Behaviour.HANG_AFTER_CONNECT, Behaviour.HUGE_LINE, Behaviour.CLOSE_AFTER_EHLO,
           Behaviour.TLS_HANDSHAKE_FAILURE, Behaviour.RESET_AFTER_ACCEPT,
           Behaviour.GARBAGE_GREETING, Behaviour.HANG_AFTER_EHLO,
           Behaviour.STARTTLS_GARBAGE}  # fmt: skip


def test_every_hostile_scenario_has_an_exit_code_and_the_new_behaviours_are_catalogued():
    hostile = [
        sc for sc in CATALOGUE if any(s.behaviours & HOSTILE for h in sc.hosts for s in h.servers)
    ]
    seen = {b for sc in hostile for h in sc.hosts for s in h.servers for b in s.behaviours}
    assert seen >= HOSTILE
    for sc in hostile:
        assert (sc.expect.verdict, sc.expect.exit_code) == ("failed", 2), sc.name
        assert {he.sender_action for he in sc.expect.hosts.values()} == {"defer"}, sc.name
    assert {0, 2} <= {sc.expect.exit_code for sc in WITH_EXIT}
    assert {sc.expect.exit_code for sc in NO_ROUTE} == {0, 3}


@pytest.mark.parametrize("scenario", WITH_EXIT, ids=[sc.name for sc in WITH_EXIT])
def test_the_text_output_exits_with_the_same_code(
    dane_world: World, world_check_args, capsys, scenario
):
    """The exit code is the decision's, not the output format's."""
    domain = dane_world.domains[scenario.name]
    assert main(["check", domain.name, *world_check_args]) == scenario.expect.exit_code
    capsys.readouterr()
