"""Static GTFS: the feed's records (``model``), reading an agency's zip (``parse``), and
the in-memory view the transit reads and the realtime feed use (``index``). No I/O but
reading the zip handed in."""
