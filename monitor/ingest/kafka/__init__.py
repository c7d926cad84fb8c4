"""The Kafka source: the consumer, its poll health, rebalances, lag, dead letters, metrics."""
