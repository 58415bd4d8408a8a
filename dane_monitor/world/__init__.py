"""The local world: a DNSSEC-signed internet with STARTTLS mail servers, on loopback.

Plain library code (no pytest import): ``dane-monitor world`` serves it, the test-suite and
the ``pytest_dane`` fixtures wrap it. The pieces, from the bottom up:

- :mod:`.zones`: zones, a signed hierarchy from a private trust anchor, deliberate faults;
- :mod:`.dnsserver`: an asyncio authoritative DNS server (UDP and TCP) for that hierarchy;
- :mod:`.pki`: certificate chains (trustme CA → intermediate → leaf, self-signed, expired);
- :mod:`.smtp`: asyncio STARTTLS SMTP servers with switchable misbehaviour;
- :mod:`.scenarios`: the catalogue of named DANE situations with their expected verdicts;
- :mod:`.world`: all of it built from scenarios and served.

Beyond :data:`CATALOGUE`: :data:`NAMESERVER_SCENARIOS` (secondary name servers that disagree
with the primary: stale, early-expiring or bogus signatures, lame, silent, down; the
:class:`NameServer` option of a :class:`Scenario`) and :data:`SENDER_SCENARIOS` (RSASHA1,
RSASHA1-NSEC3-SHA1, NSEC3 with 150 and 500 iterations, a full ``2 0 0`` root the server does or
does not send), selectable by name with :func:`by_name`.
"""

# Imported first, before any zone is built: a TLSA record of the wrong length is unusable, not
# unparsable (see dane_monitor._compat).
import dane_monitor._compat  # noqa: F401
from dane_monitor.extras import missing

try:  # the world's certificates come from trustme, an optional dependency
    import trustme  # noqa: F401
except ModuleNotFoundError as exc:
    what = "the local world (dane-monitor world and demo, the pytest_dane world fixtures)"
    raise missing("trustme", "world", what) from exc

from dane_monitor.world.dnsserver import DNSServer
from dane_monitor.world.pki import PKI, Chain, self_signed
from dane_monitor.world.scenarios import (
    CATALOGUE,
    NAMESERVER_SCENARIOS,
    SENDER_SCENARIOS,
    Cert,
    Expect,
    Host,
    HostExpect,
    NameServer,
    Record,
    Scenario,
    Server,
    by_name,
    replicate,
)
from dane_monitor.world.smtp import Behaviour, SMTPServer
from dane_monitor.world.world import Domain, Endpoint, MXHost, NameServerInfo, World
from dane_monitor.world.zones import NSEC3, Fault, Hierarchy, NSBehaviour, Secondary, Zone

__all__ = [
    "CATALOGUE",
    "NAMESERVER_SCENARIOS",
    "NSEC3",
    "PKI",
    "SENDER_SCENARIOS",
    "Behaviour",
    "Cert",
    "Chain",
    "DNSServer",
    "Domain",
    "Endpoint",
    "Expect",
    "Fault",
    "Hierarchy",
    "Host",
    "HostExpect",
    "MXHost",
    "NSBehaviour",
    "NameServer",
    "NameServerInfo",
    "Record",
    "SMTPServer",
    "Scenario",
    "Secondary",
    "Server",
    "World",
    "Zone",
    "by_name",
    "replicate",
    "self_signed",
]
