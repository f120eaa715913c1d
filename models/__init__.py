"""FIWARE Smart Data Models as typed entities that become NGSI-LD."""
