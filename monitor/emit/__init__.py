"""Emit: what driftd tells the world about a batch.

Prometheus collectors (``metrics``, ``label_metrics``), the transition journal
(``journal``), the terminal summary (``terminal``) and the alert sinks
(``alerts/``). The emit side reads the engine's outcome; it never drives the engine.
"""
