"""Tests of the alert sinks."""
