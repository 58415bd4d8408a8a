"""dane-monitor: checks, monitors and tests DANE for SMTP (RFC 7672)."""

__version__ = "0.1.0.dev0"
