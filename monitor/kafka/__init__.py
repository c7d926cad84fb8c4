"""The Kafka client library every stage shares (imported once, quietly)."""
