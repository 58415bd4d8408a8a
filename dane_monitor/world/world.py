"""A running local world: the scenario catalogue as signed zones, a DNS server and SMTP servers.

``World(scenarios)`` builds everything that is pure (keys, signed zones, certificate chains,
the plan of which server listens where) when it is created; ``await world.start()`` binds the
DNS server and one SMTP server per MX address. Every SMTP server listens on the same port
number, each on its own 127.0.0.0/8 address, so a checker can be told "connect to port P
instead of 25" once for the whole world while the TLSA names it queries stay ``_25._tcp``.

For code that is not asyncio (pytest fixtures, subprocess-driven tests, the CLI), use
``with world.running(): ...``, which serves the world from a background thread.

Name servers: the primary DNS server (``dns_host``, ``ns1.<zone>`` of every zone) serves the
whole hierarchy and is the only server the world's resolvers ask (Unbound's stub zones, delv,
the checker's stub mode), so every consumer sees the scenario as written whatever the other
servers say. A zone's secondaries (``Scenario.nameservers``; or :meth:`Zone.secondary` on
any zone of ``world.hierarchy``, then ``world.signed = world.hierarchy.sign()``, before start)
each listen on their own address from ``ns_network``, on the primary's port number
(``world.dns_port``): a checker that walks the delegation (NS and glue) reaches them by
telling its DNS client "port P instead of 53" once, as with SMTP. :meth:`World.nameservers`
lists a zone's servers (name, address, behaviour, serial); ``world.unbound(nameservers=...)``
resolves a zone through one chosen server instead of the primary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import dns.name
import dns.rdatatype
from cryptography import x509

from dane_monitor import tlsa
from dane_monitor.world.background import BackgroundLoop
from dane_monitor.world.dnsserver import DNSServer, NameServerResponder
from dane_monitor.world.pki import PKI, Chain, check_key_type, self_signed
from dane_monitor.world.scenarios import CATALOGUE, Cert, HostExpect, Record, Scenario, Server
from dane_monitor.world.smtp import Behaviour, SMTPServer
from dane_monitor.world.unbound import Unbound
from dane_monitor.world.zones import (
    Fault,
    FaultSpec,
    Hierarchy,
    NSBehaviour,
    SignedHierarchy,
    SignedSecondary,
    Zone,
)


@dataclass
class Endpoint:
    """One SMTP server of an MX host, as planned (and, once started, as listening)."""

    address: str
    chains: tuple[Chain, ...]
    behaviours: frozenset[Behaviour]
    server: SMTPServer | None = None
    # False for a published address nothing listens on (Server.address)
    listening: bool = True


@dataclass
class MXHost:
    name: str  # fully qualified, with trailing dot: the TLSA base domain
    mx_name: str  # the name the MX record (or, for implicit MX, the domain) gives
    tlsa_name: str  # _25._tcp.<name>
    tlsa_rdatas: tuple[str, ...]
    endpoints: list[Endpoint]
    expect: HostExpect | None
    # TLSA records at the MX name itself when it is a CNAME (the original name), and the
    # zones that hold the two TLSA RRsets (to copy them to another port's name).
    alias_tlsa_rdatas: tuple[str, ...] = ()
    zone: Zone | None = field(default=None, repr=False)
    alias_zone: Zone | None = field(default=None, repr=False)


@dataclass(frozen=True)
class NameServerInfo:
    """One authoritative server of a zone, as published (NS + glue) and as served."""

    zone: str  # the zone's origin, with trailing dot
    name: str  # ns1.<zone>, ns2.<zone>, ...
    address: str
    port: int | None  # the world's DNS port (None before start)
    behaviour: NSBehaviour  # the primary: SERVE
    serial: int  # the SOA serial its copy carries
    primary: bool


@dataclass
class Domain:
    scenario: Scenario
    name: str  # fully qualified, with trailing dot
    zone: Zone
    hosts: list[MXHost] = field(default_factory=list)


class World:
    """The scenario catalogue (or any list of scenarios) on loopback.

    :param scenarios: what to build; defaults to the whole catalogue.
    :param tld: the top-level zone the mail domains are delegated from (under a private
        root whose key is the trust anchor).
    :param dns_host: loopback address of the DNS server (also the NS glue of every zone).
    :param smtp_network: the loopback network SMTP server addresses are taken from.
    :param tlsa_on_smtp_port: also publish each host's TLSA records at ``_<smtp_port>._tcp``
        once the port is known, for tools that cannot be told to connect elsewhere (with the
        faults placed on the ``_25._tcp`` names: a bogus signature there is bogus at both).
    :param ns_network: the loopback network secondary name servers' addresses come from.
    """

    def __init__(
        self,
        scenarios: Iterable[Scenario] = CATALOGUE,
        *,
        tld: str = "example.",
        dns_host: str = "127.0.0.1",
        smtp_network: str = "127.0.2.0/24",
        tlsa_on_smtp_port: bool = False,
        ns_network: str = "127.0.53.0/24",
    ) -> None:
        self.tlsa_on_smtp_port = tlsa_on_smtp_port
        self.dns_host = dns_host
        self.tld = tld if tld.endswith(".") else tld + "."
        self.hierarchy = Hierarchy(".", ns_address=dns_host)
        self.hierarchy.zone(self.tld)
        self._pkis: dict[str, PKI] = {}
        self._hosting_zone: Zone | None = None
        self._unsigned_zone: Zone | None = None
        self._ipv6_taken = False
        self._addresses = (str(a) for a in ipaddress.ip_network(smtp_network).hosts())
        self._ns_addresses = (str(a) for a in ipaddress.ip_network(ns_network).hosts())
        #: secondary name servers, by address (once started)
        self.ns_servers: dict[str, DNSServer] = {}
        self.domains: dict[str, Domain] = {}
        for scenario in scenarios:
            self.domains[scenario.name] = self._build(scenario)
        self.signed = self.hierarchy.sign()
        self.dns: DNSServer | None = None
        self.smtp_port: int | None = None

    # -- building ---------------------------------------------------------------------------

    def pki(self, key_type: str) -> PKI:
        if key_type not in self._pkis:
            self._pkis[key_type] = PKI(key_type=check_key_type(key_type))
        return self._pkis[key_type]

    def _build(self, sc: Scenario) -> Domain:
        origin = f"{sc.name}.{self.tld}"
        kwargs: dict[str, object] = {"signed": sc.signed}
        if sc.denial is not None:
            kwargs["denial"] = sc.denial
        if sc.algorithm is not None:
            kwargs["algorithm"] = sc.algorithm
        if sc.keytrap is not None:
            kwargs["keytrap"] = sc.keytrap
        if sc.nsec3_flood:
            kwargs["nsec3_flood"] = sc.nsec3_flood
        zone = self.hierarchy.zone(origin, **kwargs)
        if sc.insecure_delegation:
            zone.fault(Fault.UNSIGNED_DELEGATION)
        for fault, name, rdtype in sc.faults:
            zone.fault(fault, name, rdtype)
        for ns in sc.nameservers:
            sec = zone.secondary(
                next(self._ns_addresses),
                behaviour=ns.behaviour,
                age=ns.age,
                sig_lifetime=ns.sig_lifetime,
            )
            for name, rdtype, rdatas in ns.records:
                sec.set(name, rdtype, *rdatas)
            for fault, name, rdtype in ns.faults:
                sec.fault(fault, name, rdtype)
        domain = Domain(sc, origin, zone)
        for name, rdtype, rdatas in sc.records:  # e.g. a TLS-RPT policy at _smtp._tls
            zone.add(name, rdtype, *rdatas)

        if sc.mx == "null":
            zone.add("@", "MX", "0 .")
        for host in sc.hosts:
            # Hosts in "hosting" live in a shared signed zone, apart from the mail domain's.
            host_zone, host_origin = self._placed(host.zone or sc.host_zone, sc.name, zone)
            fqdn = _absolute(host.name, host_origin)
            alias_zone, alias_origin = self._placed(host.alias_zone, sc.name, zone)
            mx_name = _absolute(host.alias, alias_origin) if host.alias else fqdn
            if host.dname:
                owner = _absolute(host.dname, origin)
                zone.add(owner, "DNAME", host_origin)
                mx_name = _absolute(host.name, owner)
            if sc.mx == "mx":
                zone.add("@", "MX", f"{host.preference} {mx_name}")
            if host.alias:
                alias_zone.add(mx_name, "CNAME", fqdn)
            names = tuple(dict.fromkeys(n.rstrip(".") for n in (fqdn, mx_name)))
            chains: dict[Cert, Chain] = {}
            endpoints = []
            for server in host.servers:
                if server.address is not None:
                    address = server.address
                    rdtype = "AAAA" if ":" in address else "A"
                    host_zone.add(fqdn, rdtype, address)
                    served = tuple(self._chain(c, names, chains) for c in server.certs)
                    endpoints.append(Endpoint(address, served, server.behaviours, listening=False))
                    continue
                if server.ipv6:
                    if self._ipv6_taken:
                        raise ValueError("a world has one IPv6 loopback address (::1) to give")
                    self._ipv6_taken, address = True, "::1"
                    host_zone.add(fqdn, "AAAA", address)
                else:
                    address = next(self._addresses)
                    host_zone.add(fqdn, "A", address)
                served = tuple(self._chain(c, names, chains) for c in server.certs)
                endpoints.append(Endpoint(address, served, server.behaviours))
            tlsa_name = f"_25._tcp.{fqdn}"
            rdatas = tuple(self._tlsa_rdata(r, host.servers[0], chains) for r in host.tlsa)
            if rdatas:
                host_zone.add(tlsa_name, "TLSA", *rdatas)
            alias_rdatas = tuple(
                self._tlsa_rdata(r, host.servers[0], chains) for r in host.alias_tlsa
            )
            if alias_rdatas:
                if not host.alias:
                    raise ValueError(f"{host.name}: alias_tlsa needs an alias")
                alias_zone.add(f"_25._tcp.{mx_name}", "TLSA", *alias_rdatas)
            for ns_index, ns in enumerate(sc.nameservers):
                for host_name, records in ns.tlsa:
                    if host_name != host.name:
                        continue
                    if host_zone is not zone:
                        raise ValueError(f"{sc.name}: NameServer.tlsa for a host not in its zone")
                    stale = [self._tlsa_rdata(r, host.servers[0], chains) for r in records]
                    zone.secondaries[ns_index].set(tlsa_name, "TLSA", *stale)
            domain.hosts.append(
                MXHost(
                    fqdn,
                    mx_name,
                    tlsa_name,
                    rdatas,
                    endpoints,
                    sc.expect.hosts.get(host.name),
                    alias_rdatas,
                    host_zone,
                    alias_zone,
                )
            )
        return domain

    def _placed(self, placement: str, scenario: str, domain_zone: Zone) -> tuple[Zone, str]:
        """The zone for a name placed in ``placement`` and the origin names are relative to."""
        if placement == "domain":
            return domain_zone, domain_zone.origin.to_text()
        shared = self._hosting() if placement == "hosting" else self._unsigned()
        return shared, f"{scenario}.{shared.origin.to_text()}"

    def _unsigned(self) -> Zone:
        """The shared zone delegated without DS (and unsigned): every name in it is insecure."""
        if self._unsigned_zone is None:
            self._unsigned_zone = self.hierarchy.zone(f"unsigned.{self.tld}", signed=False)
        return self._unsigned_zone

    def _hosting(self) -> Zone:
        """The shared, signed zone of MX hosts that do not live in their mail domain's zone."""
        if self._hosting_zone is None:
            self._hosting_zone = self.hierarchy.zone(f"hosting.{self.tld}")
        return self._hosting_zone

    def _chain(self, cert: Cert, default_names: tuple[str, ...], cache: dict[Cert, Chain]) -> Chain:
        if cert not in cache:
            names = cert.names or default_names
            if cert.self_signed:
                cache[cert] = self_signed(
                    names, key_type=cert.key_type, expired=cert.expired, compressed=cert.compressed
                )
            else:
                cache[cert] = self.pki(cert.key_type).issue(
                    names,
                    expired=cert.expired,
                    compressed=cert.compressed,
                    include_root=cert.send_root,
                )
        return cache[cert]

    def _tlsa_rdata(self, record: Record, first: Server, chains: dict[Cert, Chain]) -> str:
        if record.rdata is not None:
            return record.rdata
        cert: x509.Certificate | None
        if record.target == "unrelated":
            cert = self.pki("ecdsa").issue(["unrelated.invalid"]).leaf
        else:
            chain = chains[first.certs[record.chain]]
            cert = {
                "leaf": chain.leaf,
                "intermediate": chain.intermediate,
                "root": chain.root,
            }[record.target]
            if cert is None:
                raise ValueError(f"record target {record.target!r} does not exist in {chain}")
        return tlsa.rdata_text(cert, record.usage, record.selector, record.mtype)

    # -- trust anchor -----------------------------------------------------------------------

    def trust_anchor(self, kind: Literal["ds", "dnskey"] = "ds") -> str:
        """The world's trust anchor as zone-file lines (Unbound ``trust-anchor-file``)."""
        return self.hierarchy.trust_anchor(kind)

    def write_trust_anchor(self, path: Path, kind: Literal["ds", "dnskey"] = "ds") -> Path:
        path.write_text(self.trust_anchor(kind))
        return path

    def write_bind_trust_anchor(self, path: Path) -> Path:
        """The anchor in BIND's ``trust-anchors { … };`` syntax, for ``delv -a``."""
        path.write_text(self.hierarchy.bind_trust_anchors())
        return path

    def unbound(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str | None = None,
        cache: bool = False,
        nameservers: Mapping[str, str] | None = None,
        options: Iterable[str] = (),
    ) -> Unbound:
        """A validating Unbound for this (started) world: ``with world.unbound() as u: ...``

        It asks the primary for every zone, except the zones in ``nameservers`` (zone →
        address of one of its servers, e.g. a stale secondary's): a resolver that happened to
        reach that server, as a sender's resolver may. ``options``: further ``server:`` lines
        of its configuration (a validator policy, e.g. a lower NSEC3 iteration limit).
        """
        zones = [name.to_text() for name in self.hierarchy.zones]
        dns_port = self.dns_address[1]
        stubs = {
            dns.name.from_text(z).to_text(): (a, dns_port) for z, a in (nameservers or {}).items()
        }
        unknown = set(stubs) - set(zones)
        if unknown:
            raise ValueError(f"not zones of this world: {sorted(unknown)}")
        return Unbound(
            self.dns_address,
            self.trust_anchor(),
            zones=zones,
            host=host,
            port=port,
            binary=binary,
            cache=cache,
            stubs=stubs,
            options=options,
        )

    # -- serving ----------------------------------------------------------------------------

    @property
    def dns_address(self) -> tuple[str, int]:
        if self.dns is None:
            raise RuntimeError("the world is not started")
        return (self.dns.host, self.dns.port)

    @property
    def dns_port(self) -> int:
        """The port every name server of the world (primary and secondaries) listens on."""
        return self.dns_address[1]

    def nameservers(self, zone: str) -> list[NameServerInfo]:
        """The authoritative servers of ``zone`` (e.g. ``domain.name``) in NS order: the
        primary (ns1, the world's DNS server) first, then the secondaries."""
        origin = dns.name.from_text(zone)
        signed = self.signed.zone(origin)
        port = self.dns.port if self.dns is not None else None
        soa = signed.rrset(origin, "SOA")
        assert soa is not None
        secondaries = {s.name: s for s in self.signed.secondaries.get(origin, ())}
        out = []
        for name, address in self.signed.nameservers(origin):
            sec = secondaries.get(name)
            out.append(
                NameServerInfo(
                    origin.to_text(),
                    name.to_text(),
                    address,
                    port,
                    NSBehaviour.SERVE if sec is None else sec.behaviour,
                    int(soa[0].serial) if sec is None else sec.serial,
                    sec is None,
                )
            )
        return out

    def endpoints(self) -> Iterator[tuple[Domain, MXHost, Endpoint]]:
        for domain in self.domains.values():
            for host in domain.hosts:
                for endpoint in host.endpoints:
                    yield domain, host, endpoint

    def _secondaries(self, signed: SignedHierarchy) -> Iterator[SignedSecondary]:
        for secs in signed.secondaries.values():
            yield from secs

    async def _start_dns(self, attempts: int = 50) -> None:
        # The primary on an ephemeral port, then every secondary on that port number on its own
        # address (NS glue carries no port); if another process holds it there, start over.
        for _ in range(attempts):
            self.dns = DNSServer(self.signed, host=self.dns_host)
            await self.dns.start()
            try:
                for sec in self._secondaries(self.signed):
                    if sec.behaviour == NSBehaviour.DOWN:
                        continue  # published, nothing listens
                    server = DNSServer(
                        host=sec.address,
                        port=self.dns.port,
                        responder=NameServerResponder(sec, self.signed),
                    )
                    await server.start()
                    self.ns_servers[sec.address] = server
                return
            except OSError as exc:
                await self._stop_dns()
                if exc.errno != errno.EADDRINUSE:
                    raise
        raise OSError(errno.EADDRINUSE, "no DNS port free on all name server addresses")

    async def _stop_dns(self) -> None:
        for server in self.ns_servers.values():
            with contextlib.suppress(Exception):
                await server.stop()
        self.ns_servers.clear()
        if self.dns is not None:
            await self.dns.stop()
            self.dns = None

    async def start(self) -> None:
        await self._start_dns()
        try:
            await self._start_smtp()
            if self.tlsa_on_smtp_port and self.smtp_port:
                self._publish_tlsa_at(self.smtp_port)
        except BaseException:
            await self.stop()
            raise

    def _publish_tlsa_at(self, port: int) -> None:
        """Copy every host's _25._tcp TLSA RRset, with its faults, to _<port>._tcp and re-sign
        (same keys, so the DS and the trust anchor stay valid), for tools that take the TLSA
        name from the port they connect to (posttls-finger, real senders, openssl's tests of
        a live world)."""
        for domain in self.domains.values():
            for host in domain.hosts:
                if host.tlsa_rdatas and host.zone is not None:
                    host.zone.add(f"_{port}._tcp.{host.name}", "TLSA", *host.tlsa_rdatas)
                if host.alias_tlsa_rdatas and host.alias_zone is not None:
                    host.alias_zone.add(
                        f"_{port}._tcp.{host.mx_name}", "TLSA", *host.alias_tlsa_rdatas
                    )
        # a secondary's own TLSA RRsets (a stale copy's) move along, and so does every fault
        # placed on a _25._tcp name (a bogus or expired signature, SERVFAIL, ...) in the zone
        # and in each copy: a sender asking for _<port>._tcp meets what _25._tcp serves
        for zone in self.hierarchy:
            zone.faults.extend(_faults_at_port(zone.faults, port))
            for secondary in zone.secondaries:
                for (owner, rdtype), rdatas in list(secondary.overrides.items()):
                    moved = _at_port(owner, port)
                    if rdtype == dns.rdatatype.TLSA and moved is not None:
                        secondary.overrides[(moved, rdtype)] = rdatas
                secondary.faults.extend(_faults_at_port(secondary.faults, port))
        self.signed = self.hierarchy.sign()
        assert self.dns is not None
        self.dns.signed = self.signed
        for sec in self._secondaries(self.signed):
            if sec.address in self.ns_servers:
                self.ns_servers[sec.address].responder = NameServerResponder(sec, self.signed)

    async def _start_smtp(self, attempts: int = 50) -> None:
        # One port for every address: take an ephemeral one on the first address, then ask
        # for the same number on the others; if another process holds it there, start over.
        planned = [ep for _, _, ep in self.endpoints() if ep.listening]
        for _ in range(attempts):
            port = 0
            try:
                for ep in planned:
                    ep.server = SMTPServer(
                        ep.address, port, chains=ep.chains, behaviours=ep.behaviours
                    )
                    await ep.server.start()
                    port = ep.server.port
                self.smtp_port = port or None
                return
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                await self._stop_smtp()
        raise OSError(errno.EADDRINUSE, "no SMTP port free on all world addresses")

    async def _stop_smtp(self) -> None:
        for _, _, ep in self.endpoints():
            if ep.server is not None:
                with contextlib.suppress(Exception):
                    await ep.server.stop()
                ep.server = None

    async def stop(self) -> None:
        await self._stop_smtp()
        await self._stop_dns()

    async def __aenter__(self) -> World:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def running(self, timeout: float = 30.0) -> Iterator[World]:
        """Serve the world from a background thread for the duration of the ``with`` block."""
        with BackgroundLoop() as background:
            background.run(self.start(), timeout)
            try:
                yield self
            finally:
                background.run(self.stop(), timeout)


def _at_port(name: dns.name.Name | None, port: int) -> dns.name.Name | None:
    """``_<port>._tcp.<host>`` for a ``_25._tcp.<host>`` name; None for any other name."""
    if name is None or name.labels[:2] != (b"_25", b"_tcp"):
        return None
    return dns.name.Name((f"_{port}".encode(), *name.labels[1:]))


def _faults_at_port(faults: list[FaultSpec], port: int) -> list[FaultSpec]:
    """The faults on ``_25._tcp`` names, placed on ``_<port>._tcp`` (those not there yet)."""
    moved = [
        dataclasses.replace(f, name=name)
        for f in faults
        if (name := _at_port(f.name, port)) is not None
    ]
    return [f for f in dict.fromkeys(moved) if f not in faults]


def _absolute(name: str, origin: str) -> str:
    if name == "@":
        return origin
    if name.endswith("."):
        return name
    return dns.name.from_text(name, dns.name.from_text(origin)).to_text()
