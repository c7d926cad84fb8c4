"""The Kafka source: the consumer, its dead-letter producer, lag and client metrics."""
