"""JSON Schemas this project owns, and validation against Smart Data Models schemas."""
