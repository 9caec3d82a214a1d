"""The bustracker bus agent: GPS in, durable buffer, uplink to the server."""

__version__ = "0.1.0"
