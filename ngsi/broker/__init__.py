"""The embedded NGSI-LD broker."""
