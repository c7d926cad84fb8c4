"""Ingest: where events come from and how they become rows.

Sources (``source`` defines the contract; ``demo_source``, ``file_source`` and
``kafka/``); the decoder (``decode``, with ``json_parse``, ``feature_objects``,
``columns``, ``timestamps``, ``segment_keys`` and ``values`` for its parts) and schema
discovery (``discovery``, ``warmup``); segment admission (``segments``) and the event
clock (``watermark``).
"""
