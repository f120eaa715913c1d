"""Drehscheibe: the city's data hub between LoRaWAN sensors and FIWARE NGSI-LD."""

__version__ = "0.1.0"
