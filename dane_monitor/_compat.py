"""Adjustments to libraries whose defaults hide what a DANE checker must see.

dnspython (since 2.8) rejects a TLSA record whose SHA-256/SHA-512 data has the wrong length
— from zone files and from the wire alike, so a single malformed record makes the whole
DNS response unparsable and a checker would see a timeout instead of the record. RFC 7671
§4 wants such a record treated as unusable while the rest of the RRset still counts, and
operators need to be told which record is malformed; :mod:`dane_monitor.tlsa` judges the
length itself (``bad-digest-length``). So the TLSA class goes back to accepting any length.

Importing this module does it. Every part of the product that parses DNS data imports it
first: :mod:`dane_monitor.lookup` (replies from resolvers and name servers) and
:mod:`dane_monitor.world` (the local world's zones). Not the package itself: importing
:mod:`dane_monitor.settings` (the pytest plugin does, in every run) must not import dnspython.
"""

from __future__ import annotations


def relax_tlsa_length_check() -> None:
    """Let dnspython's TLSA class take data of any length (idempotent)."""
    import dns.rdtypes.ANY.TLSA

    dns.rdtypes.ANY.TLSA.TLSA._cert_length_by_mtype = {}


relax_tlsa_length_check()
