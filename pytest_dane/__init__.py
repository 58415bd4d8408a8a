"""pytest plugin for DANE for SMTP: a local DNSSEC + STARTTLS world and DANE checks."""
