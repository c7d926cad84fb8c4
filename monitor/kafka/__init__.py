"""The Kafka layer every stage shares: kafka-python imported once, clients built from settings."""
