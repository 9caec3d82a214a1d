"""GTFS-Realtime VehiclePositions: the pure builder (``feed``) and its encoded cache (``cache``)."""
