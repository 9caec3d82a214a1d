"""The bustracker server: ingest, storage, live streams and reads for operators."""

__version__ = "0.1.0"
