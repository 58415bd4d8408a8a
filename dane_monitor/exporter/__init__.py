"""The Prometheus exporter: ``dane-monitor serve`` and ``dane-monitor demo``.

One module per concern: :mod:`.config` (the YAML file, errors with line numbers),
:mod:`.webconfig` (TLS and basic auth, exporter-toolkit format), :mod:`.metrics` (results
to metric families: the vocabulary), :mod:`.scheduler` (background checks), :mod:`.http`
(a small strict HTTP/1.1 server), :mod:`.app` (the endpoints), :mod:`.cli` (the commands),
:mod:`.logs` (logfmt / JSON lines). Reference: ``docs/exporter.md``.
"""

__all__ = ["Config", "ConfigError", "Exporter", "Target", "load", "parse"]


def __getattr__(name: str):
    # Lazy: ``dane-monitor`` imports this package's cli module for every command.
    if name == "Exporter":
        from dane_monitor.exporter.app import Exporter

        return Exporter
    if name in __all__:
        from dane_monitor.exporter import config

        return getattr(config, name)
    raise AttributeError(name)
