"""Pure drift-detection algorithms: sketches, reference profiles, tests and batched ADWIN.

Nothing in this package does I/O, logging configuration, Kafka or Prometheus work.
"""
