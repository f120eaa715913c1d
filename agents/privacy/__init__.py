"""Data protection of the city's stores: erasure of one device's or one area's data, and the
retention of the agent's own stores.

    eraser = Eraser(client, agent_dir=Path("agent-data"))
    eraser.erase_device("70B3D57ED0000001").to_json()    # counts per store
    eraser.erase_area(bbox_polygon(6.77, 51.22, 6.78, 51.23))
    apply_agent_retention(Path("agent-data"), archive_days=30, dead_letter_days=90)

The broker's own retention (current state and history, per entity type) is a broker setting
(`ngsi.broker`); the public projection is `agents.publish`.
"""

from agents.privacy._erase import Eraser, ErasureReport, bbox_polygon
from agents.privacy._retention import AgentRetentionReport, apply_agent_retention

__all__ = [
    "AgentRetentionReport",
    "Eraser",
    "ErasureReport",
    "apply_agent_retention",
    "bbox_polygon",
]
