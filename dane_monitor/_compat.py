"""Adjustments to libraries whose defaults hide what a DANE checker must see, or cost every
command its start-up time.

dnspython (since 2.8) rejects a TLSA record whose SHA-256/SHA-512 data has the wrong length
— from zone files and from the wire alike, so a single malformed record makes the whole
DNS response unparsable and a checker would see a timeout instead of the record. RFC 7671
§4 wants such a record treated as unusable while the rest of the RRset still counts, and
operators need to be told which record is malformed; :mod:`dane_monitor.tlsa` judges the
length itself (``bad-digest-length``). So the TLSA class goes back to accepting any length.

dnspython decides its optional features (``dnssec``: cryptography; ``idna``) by reading the
installed packages' metadata, and imports :mod:`importlib.metadata` (email, zipfile, csv,
…: about a tenth of ``dane-monitor check``'s imports) to do so. :func:`decide_dns_features`
decides the two features dnspython asks about when it is imported, from the packages'
``__version__``, and leaves :mod:`importlib.metadata` to load only if something reads it.

Importing this module does both. Every part of the product that parses DNS data imports it
first: :mod:`dane_monitor.lookup` (replies from resolvers and name servers) and
:mod:`dane_monitor.world` (the local world's zones). Not the package itself: importing
:mod:`dane_monitor.settings` (the pytest plugin does, in every run) must not import dnspython.
"""

from __future__ import annotations

import _thread
import importlib
import importlib.util
import sys
import types


class _Deferred(types.ModuleType):
    """A stand-in in ``sys.modules`` for a module not yet imported: the first use of any of
    its names imports the real module (which then replaces it) and answers from it.

    Not :class:`importlib.util.LazyLoader`: on Python 3.11 a second ``import`` statement of a
    lazy module reads its ``__spec__`` and so loads it at once, and dnspython's is a second
    import statement."""

    def __init__(self, name: str) -> None:
        super().__init__(name)

    def __getattr__(self, attr: str) -> object:
        with _LOADING:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = importlib.import_module(self.__name__)
        return getattr(real, attr)


_LOADING = _thread.RLock()


def _defer_metadata() -> None:
    """Let :mod:`importlib.metadata` be imported without being loaded until used."""
    if "importlib.metadata" in sys.modules:
        return
    spec = importlib.util.find_spec("importlib.metadata")
    if spec is None:
        return
    stand_in = _Deferred("importlib.metadata")
    stand_in.__spec__ = spec
    sys.modules["importlib.metadata"] = stand_in
    importlib.metadata = stand_in  # type: ignore[assignment]  # as an import statement binds it


def _release(version: str) -> tuple[int, ...]:
    """``"50.0.2"`` as (50, 0, 2), read as dnspython reads versions (leading digits of each
    part, up to the first part without)."""
    numbers = []
    for part in version.split("."):
        digits = part[: len(part) - len(part.lstrip("0123456789"))]
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


#: The features whose packages dnspython imports when they are there, so reading their
#: ``__version__`` imports nothing extra.
_IMPORTED_ANYWAY = ("dnssec", "idna")


def decide_dns_features() -> None:
    """Decide dnspython's optional features as dnspython would (every ``package>=version``
    it requires is installed and recent enough) without reading package metadata: a missing
    package decides from its import spec, ``dnssec`` and ``idna`` from the packages'
    ``__version__``. What this cannot decide is left to dnspython (which then loads the
    metadata). Saves anything only before dnspython's name module is imported."""
    _defer_metadata()
    import dns._features

    requirements: dict[str, list[str]] = getattr(dns._features, "_requirements", {})
    decided_already: dict[str, bool] = getattr(dns._features, "_cache", {})
    for feature, needs in requirements.items():
        if feature in decided_already:
            continue
        decided: bool | None = True
        for requirement in needs:
            package, _, minimum = requirement.partition(">=")
            if importlib.util.find_spec(package) is None:
                decided = False
                break
            if feature not in _IMPORTED_ANYWAY:
                decided = None
                continue
            version = getattr(__import__(package), "__version__", None)
            if not isinstance(version, str) or not minimum:
                decided = None
                break
            if _release(version) < _release(minimum):
                decided = False
                break
        if decided is not None:
            dns._features.force(feature, decided)


def relax_tlsa_length_check() -> None:
    """Let dnspython's TLSA class take data of any length (idempotent)."""
    import dns.rdtypes.ANY.TLSA

    dns.rdtypes.ANY.TLSA.TLSA._cert_length_by_mtype = {}


decide_dns_features()
relax_tlsa_length_check()
