"""Agents that move data in and out of the NGSI-LD broker."""

from agents._native import use_sources_if_stale

use_sources_if_stale()
