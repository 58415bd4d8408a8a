"""dane-monitor: checks, monitors and tests DANE for SMTP (RFC 7672)."""

__version__ = "0.1.0.dev0"

from dane_monitor._compat import relax_tlsa_length_check as _relax

_relax()
