"""dane-monitor: checks, monitors and tests DANE for SMTP (RFC 7672).

Importing the package imports nothing else: :mod:`dane_monitor.settings` (which the pytest
plugin imports in every run) stays standard-library only. The parts that parse DNS data
(:mod:`dane_monitor.lookup`, :mod:`dane_monitor.world`) relax dnspython's TLSA length check
when they are imported (:func:`dane_monitor._compat.relax_tlsa_length_check`).
"""

__version__ = "0.1.0.dev0"
