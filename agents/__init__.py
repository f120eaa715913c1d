"""Agents that move data in and out of the NGSI-LD broker."""
