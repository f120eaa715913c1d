"""LoRaWAN network-server sources and the Uplink value."""
