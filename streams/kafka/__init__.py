"""Kafka clients for apps and operators: publisher, consumer, topics, sinks."""
