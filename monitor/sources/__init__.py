"""Event sources: Kafka, a JSONL file or stdin, and the built-in demo stream."""
