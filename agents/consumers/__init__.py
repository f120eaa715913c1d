"""Consumers that receive NGSI-LD notifications."""
