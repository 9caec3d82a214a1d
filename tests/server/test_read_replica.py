"""History reads from a real streaming standby (DATABASE_READ_URL), and falling back from it.

The standby is made by ``pg_basebackup -R`` from the test cluster. Tracks are
read from it while it is current; paused replay (lagging) and a stopped
standby (absent) send them to the primary, and the answer is whole either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.pg_standby import Standby, pg_standby
from tests.server.live_client import fix, post_fixes
from tests.server.running import RunningServer
from tests.server.test_metrics import scrape, value

__all__ = ["pg_standby"]

READS = "bustracker_db_history_reads_total"


def track_fixes(server: RunningServer, device_id: int) -> int:
    start = datetime.now(UTC) - timedelta(hours=1)
    r = httpx.get(
        f"{server.url}/v1/vehicles/{device_id}/track",
        params={"from": start.isoformat()},
        headers=server.operator("viewer"),
    )
    assert r.status_code == 200, r.text
    features: list[Any] = r.json()["features"]
    return int(features[0]["properties"]["fixes"]) if features else 0


MAX_LAG_S = 2


def test_tracks_read_from_the_standby_until_it_lags_or_goes(
    server_factory: Callable[..., RunningServer], postgis_url: str, pg_standby: Standby
) -> None:
    dbname = postgis_url.rsplit("/", 1)[1]
    # A few seconds allowed, not 0: the standby is often a few WAL records behind
    # (the server's own bookkeeping, checkpoints) and a lag of 0 would then be luck.
    server = server_factory(
        postgis_url, database_read_url=pg_standby.url(dbname), db_read_max_lag_s=MAX_LAG_S
    )
    bus, token = server.add_device("bus-1")
    assert post_fixes(server.url, token, fix(45.0, 9.0, age_s=30)).status_code == 200
    pg_standby.wait_replayed(dbname)
    assert track_fixes(server, bus.id) == 1
    m = scrape(server)
    assert (value(m, READS, target="replica"), value(m, READS, target="primary")) == (1, 0)

    # Replay paused: the standby falls behind, the primary answers with the newest fix.
    pg_standby.execute("SELECT pg_wal_replay_pause()", dbname=dbname)
    try:
        assert post_fixes(server.url, token, fix(45.1, 9.0, age_s=20)).status_code == 200
        pg_standby.wait_received_unreplayed(dbname)
        # Lag is the age of the last replayed commit: past MAX_LAG_S it is too much.
        time.sleep(MAX_LAG_S + 0.2)
        assert track_fixes(server, bus.id) == 2
        assert value(scrape(server), READS, target="primary") == 1
    finally:
        pg_standby.execute("SELECT pg_wal_replay_resume()", dbname=dbname)

    # Gone: still answered, by the primary, without waiting on the dead standby each time.
    pg_standby.stop()
    started = time.monotonic()
    assert post_fixes(server.url, token, fix(45.2, 9.0, age_s=10)).status_code == 200
    assert track_fixes(server, bus.id) == 3
    assert track_fixes(server, bus.id) == 3
    m = scrape(server)
    assert (value(m, READS, target="replica"), value(m, READS, target="primary")) == (1, 3)
    assert time.monotonic() - started < 30
