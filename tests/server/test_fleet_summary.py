"""The wallboard's figures and the enrollment code format: pure functions, exact numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server import enrollment
from server.fleet_summary import summarize
from server.model import Device
from server.validation import agent_report

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def test_the_alert_fires_when_more_than_a_tenth_of_the_fleet_in_service_is_offline() -> None:
    devices = [Device(id=i, name=f"bus-{i}") for i in range(1, 11)]
    devices.append(Device(id=11, name="parked", in_service=False))
    states = {i: "online" for i in range(1, 10)}  # bus-10 was never heard from: offline
    at_limit = summarize(devices, states, {}, fixes_last_minute=42)  # type: ignore[arg-type]
    assert (at_limit["vehicles"], at_limit["online"], at_limit["offline"]) == (11, 9, 1)
    assert at_limit["out_of_service"] == 1  # a device out of service is not offline
    assert (at_limit["offline_share"], at_limit["offline_alert"]) == (0.1, False)  # not above
    states[9] = "offline"
    over = summarize(devices, states, {}, fixes_last_minute=42)  # type: ignore[arg-type]
    assert (over["offline"], over["offline_share"], over["offline_alert"]) == (2, 0.2, True)
    assert over["fixes_per_minute"] == 42


def test_backlogs_that_grow_and_devices_whose_last_call_was_refused() -> None:
    devices = [
        Device(id=1, name="filling", backlog=90, backlog_base=40),
        Device(id=2, name="draining", backlog=10, backlog_base=40),
        Device(id=3, name="new", backlog=5),  # nothing to compare with yet
        Device(id=4, name="revoked", active=False, auth_error_at=NOW),
        Device(id=5, name="fixed", auth_error_at=NOW - timedelta(minutes=5)),
    ]
    heard = {5: NOW}  # accepted after its last refusal: enrolled again
    out = summarize(devices, {}, heard, 0)
    assert out["growing_backlogs"] == [
        {"device_id": 1, "name": "filling", "backlog": 90, "previous": 40}
    ]
    assert out["auth_errors"] == [{"device_id": 4, "name": "revoked", "at": "2026-12-02T08:00:00Z"}]
    assert out["vehicles"] == 4  # the revoked unit is not part of the fleet any more


def test_codes_are_typeable_and_read_forgivingly() -> None:
    codes = {enrollment.new_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) == 9 and code[4] == "-"
        assert not set(code.replace("-", "")) & set("0O1IL2Z5SBUV")
        assert enrollment.normalize(code.lower().replace("-", " ")) == code.replace("-", "")
    assert enrollment.normalize("ABCD-EFG0") is None  # 0 is never in a code
    assert enrollment.normalize("ACDE") is None
    assert enrollment.refusal(NOW, None, NOW) == "expired_code"  # expiry is exclusive
    assert enrollment.refusal(NOW + timedelta(seconds=1), None, NOW) is None
    assert enrollment.refusal(NOW + timedelta(hours=1), NOW, NOW) == "used_code"


def test_the_agent_object_is_kept_when_well_formed_and_dropped_otherwise() -> None:
    assert agent_report({"version": "1.4.2", "backlog": 12}) == (
        agent_report({"backlog": 12, "version": "1.4.2", "extra": True})
    )
    report = agent_report({"version": "1.4.2", "backlog": 12})
    assert report is not None and (report.version, report.backlog) == ("1.4.2", 12)
    assert agent_report({"version": "x" * 65, "backlog": -1}) is None
    half = agent_report({"version": 7, "backlog": 3})
    assert half is not None and (half.version, half.backlog) == (None, 3)
    assert agent_report({"backlog": True}) is None and agent_report("1.0") is None
