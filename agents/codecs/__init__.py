"""Payload codecs: bytes and network-server objects to measurements."""
