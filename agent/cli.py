"""``bustracker-agent``: run the agent, show its status and quarantine, simulate, check a config.

Exit codes: 0 fine, 1 runtime failure, 2 bad configuration (the message names
the key). Under systemd, ``RestartPreventExitStatus=2`` keeps a broken config
from becoming a restart loop.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import __version__, quarantine
from agent.buffer import Buffer, BufferError
from agent.settings import ConfigError, Settings, load_settings, redacted

STATUS_KEYS = ("state", "backlog", "last_fix", "last_upload", "last_error")
EXIT_CONFIG = 2


def _settings(path: str) -> Settings:
    try:
        return load_settings(path, os.environ)
    except ConfigError as exc:
        print(f"bustracker-agent: bad config {path}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by the agent's user
    return True


def read_status(settings: Settings) -> dict[str, Any]:
    """The status file plus live buffer counts, read-only: safe while the agent runs."""
    try:
        doc: dict[str, Any] = json.loads(settings.status_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = {}
    if not doc or (doc.get("state") != "stopped" and not _pid_alive(doc.get("pid"))):
        doc["state"] = "stopped"  # never ran, or killed: the file's state is stale
    if settings.buffer.path.exists():
        try:
            view = Buffer(settings.buffer.path, read_only=True)
            doc["backlog"] = view.count(exact=True)
            doc["quarantined"] = view.quarantined()
            view.close()
        except Exception as exc:  # a locked or foreign file: show what the file said
            doc.setdefault("last_error", f"can't read buffer: {exc}")
    doc.setdefault("backlog", 0)
    return doc


def _ago(stamp: str | None) -> str:
    if not stamp:
        return "never"
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    secs = (datetime.now(UTC) - then).total_seconds()
    return f"{stamp} ({secs:.0f} s ago by this machine's clock)"


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    doc = read_status(settings)
    if args.json:
        print(json.dumps({k: doc.get(k) for k in STATUS_KEYS}))
        return 0
    fix = doc.get("last_fix")
    where = f"{fix['t']}  {fix['lat']:.6f}, {fix['lon']:.6f}" if fix else "none yet"
    lines = [
        ("state", doc["state"]),
        ("backlog", f"{doc['backlog']} fixes buffered"),
        ("last fix", where),
        ("last upload", _ago(doc.get("last_upload"))),
        ("last error", doc.get("last_error") or "-"),
    ]
    if doc.get("quarantined"):
        lines.append(
            (
                "quarantined",
                f"{doc['quarantined']} fixes the server could not read "
                "(bustracker-agent quarantine list)",
            )
        )
    if "next_attempt_in_s" in doc and doc["state"] != "stopped":
        lines.append(
            ("next upload", f"in {doc['next_attempt_in_s']} s, up to {doc.get('batch_size')} fixes")
        )
    lines.append(
        (
            "status file",
            f"{settings.status_path} (updated {_ago(doc.get('updated_at'))}, pid {doc.get('pid')})",
        )
    )
    for key, value in lines:
        print(f"{key + ':':<13} {value}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    # httpx imports its own command line tool (rich, pygments: ~5 MB of RSS) when
    # those happen to be installed; the agent never uses it, and on a Pi every MB counts.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from agent.runner import Runner  # sources and httpx load only when running

    try:
        return Runner(settings).run()
    except BufferError as exc:
        logging.getLogger("agent").error("%s", exc)
        return 1


def cmd_check(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    from agent.uplink import read_token

    _, problem = read_token(settings.server)
    if args.json:
        print(json.dumps(redacted(settings), indent=1))
    else:
        for section, values in redacted(settings).items():
            print(f"[{section}]")
            for key, value in values.items():
                print(f"  {key} = {json.dumps(value)}")
    if problem:
        print(
            f"bustracker-agent: {problem} (the agent would run, buffer, and show config_error)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    print(f"config OK: {args.config}", file=sys.stderr)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """The installer's checklist (agent/doctor.py); exit 1 when any check failed."""
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from agent import doctor

    checks = doctor.run_checks(Path(args.config), os.environ, gps_wait_s=args.gps_wait)
    if args.json:
        print(json.dumps(doctor.as_json(checks), indent=1))
    else:
        print(doctor.as_text(checks))
    return 0 if all(c.ok for c in checks) else 1


def cmd_quarantine(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    if args.action == "list":
        return quarantine.cmd_list(settings, args.config, args.json)
    return quarantine.cmd_requeue(settings, args.config)


def cmd_simulate(args: argparse.Namespace) -> int:
    from agent.simulate import write_route

    if args.start:
        start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
    else:
        start = datetime.now(UTC).replace(microsecond=0)
    path = write_route(Path(args.out), args.seed, start, args.duration)
    print(f"wrote {path}: {args.duration} s of route from {start.isoformat()} (seed {args.seed})")
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    from agent.enroll import EnrollError, enroll

    try:
        done = enroll(args.server, args.code, Path(args.config), args.token_file, args.user)
    except EnrollError as exc:
        print(f"bustracker-agent enroll: {exc}", file=sys.stderr)
        print("nothing was written", file=sys.stderr)
        return exc.code
    print(f"enrolled as device {done.device_id} ({done.name}) at {args.server}")
    print(f"wrote the device token to {done.token_file} (mode 0600)")
    verb = "created" if done.created_config else "updated"
    print(f"{verb} {done.config}: server.url and server.token_file")
    if args.user is None and os.geteuid() == 0:
        print(
            "note: the token file belongs to root; pass --user bustracker so the agent can read it",
            file=sys.stderr,
        )
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bustracker-agent", description="The bustracker bus agent.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument(
        "--log-level",
        default=os.environ.get("LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING, ERROR (default: $LOG_LEVEL or INFO)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="capture and upload until SIGTERM")
    run.add_argument("--config", required=True)
    run.set_defaults(func=cmd_run)
    st = sub.add_parser("status", help="show the running agent's state")
    st.add_argument("--config", required=True)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)
    ck = sub.add_parser("check-config", help="validate a config file (and env overrides)")
    ck.add_argument("--config", required=True)
    ck.add_argument("--json", action="store_true")
    ck.set_defaults(func=cmd_check)
    dr = sub.add_parser(
        "doctor", help="check this unit: config, GPS fix, time, disk, LEDs, server, token"
    )
    dr.add_argument("--config", required=True)
    dr.add_argument("--json", action="store_true")
    dr.add_argument(
        "--gps-wait", type=float, default=15.0, help="seconds to wait for a fix (default 15)"
    )
    dr.set_defaults(func=cmd_doctor)
    sim = sub.add_parser("simulate", help="write an NMEA file of a plausible bus route")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--duration", type=int, required=True, help="seconds")
    sim.add_argument("--out", required=True)
    sim.add_argument("--start", help="ISO 8601 UTC start time (default: now)")
    sim.set_defaults(func=cmd_simulate)
    en = sub.add_parser("enroll", help="trade a one-time enrollment code for the device token")
    en.add_argument("--server", required=True, help="the server's base URL")
    en.add_argument("--code", required=True, help="the code the operator gave, like ABCD-EFGH")
    en.add_argument("--config", required=True, help="the agent's config (created if missing)")
    en.add_argument(
        "--token-file", help="where the token goes (default: the config's, else device-token)"
    )
    en.add_argument("--user", help="the agent's user, to own the files (when run as root)")
    en.set_defaults(func=cmd_enroll)
    qu = sub.add_parser("quarantine", help="fixes the server could not read: list, requeue")
    qu_sub = qu.add_subparsers(dest="action", required=True)
    ql = qu_sub.add_parser("list", help="each quarantined fix with the server's reason")
    ql.add_argument("--config", required=True)
    ql.add_argument("--json", action="store_true")
    qr = qu_sub.add_parser("requeue", help="put quarantined fixes back into the send queue")
    qr.add_argument("--config", required=True)
    for q in (ql, qr):
        q.set_defaults(func=cmd_quarantine)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request is noise
    logging.Formatter.converter = time.gmtime
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
