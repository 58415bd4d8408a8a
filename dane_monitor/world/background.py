"""The world's background event loop: :class:`dane_monitor.background.BackgroundLoop` (it
lives outside the world, whose import needs the ``world`` extra)."""

from dane_monitor.background import BackgroundLoop

__all__ = ["BackgroundLoop"]
