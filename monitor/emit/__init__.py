"""Emit: what driftd tells the world about a batch.

Prometheus collectors (``metrics``, ``drift_collector`` with the per-segment digest of
``drift_summary``, ``label_metrics``), the rendered ``/metrics`` answer
(``exposition``), the transition journal (``journal``), the terminal summary
(``terminal``) and the alert sinks (``alerts/``). The emit side reads the engine's
outcome; it never drives the engine.
"""
