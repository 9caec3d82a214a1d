"""``bustracker``: run the server, manage devices and operators, run the demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from server.auth import hash_device_token, hash_password, new_device_token
from server.demo import DemoError
from server.error_reports import init_error_reports
from server.model import ROLES
from server.settings import Settings, SettingsError, load_settings
from server.store import open_configured
from server.store.base import Conflict, LastAdmin, Store, StoreUnavailable


class CliError(Exception):
    """Shown to the user as ``bustracker: <message>`` with exit code 2."""


def _with_store(settings: Settings, work: Callable[[Store], Awaitable[int]]) -> int:
    async def run() -> int:
        store = open_configured(settings.store)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _print(obj: Any, as_json: bool, text: str) -> None:
    print(json.dumps(obj) if as_json else text)


def cmd_device(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: Store) -> int:
        if args.action == "add":
            token = new_device_token()
            try:
                device = await store.add_device(args.name, hash_device_token(token), args.route)
            except Conflict:
                raise CliError(f"a device named {args.name!r} exists already") from None
            out = {"id": device.id, "name": device.name, "token": token}
            _print(
                out,
                args.json,
                f"device {device.id} {device.name}\ntoken: {token}\n"
                "(shown once: put it in the bus unit's token_file now)",
            )
        elif args.action == "list":
            devices = await store.list_devices()
            rows = [
                {
                    "id": d.id,
                    "name": d.name,
                    "active": d.active,
                    "in_service": d.in_service,
                    "route": d.route,
                }
                for d in devices
            ]
            text = "\n".join(
                f"{d.id:>5}  {d.name:<20} {'active' if d.active else 'revoked':<8} {d.route or ''}"
                for d in devices
            )
            _print({"devices": rows}, args.json, text or "no devices")
        elif args.action == "rotate":
            token = new_device_token()
            if not await store.set_device_token(args.id, hash_device_token(token)):
                raise CliError(f"no device with id {args.id}")
            _print({"id": args.id, "token": token}, args.json, f"new token: {token}")
        elif args.action == "code":
            await _enrollment_code(store, args)
        elif args.action == "revoke":
            if not await store.revoke_device(args.id):
                raise CliError(f"no device with id {args.id}")
            _print({"id": args.id, "revoked": True}, args.json, f"device {args.id} revoked")
        return 0

    return _with_store(settings, work)


async def _enrollment_code(store: Store, args: argparse.Namespace) -> None:
    from server.audit import record
    from server.enroll import issue_enrollment
    from server.vehicle import iso

    if not 60 <= args.expires_in <= 7 * 86400:
        raise CliError("--expires-in: seconds, 60..604800")
    device = await store.get_device(args.id)
    issued = await issue_enrollment(
        store, args.id, timedelta(seconds=args.expires_in), datetime.now(UTC)
    )
    if device is None or issued is None:
        raise CliError(f"no device with id {args.id}")
    code, expiry = issued
    await record(store, "cli", "enrollment.issue", "device", args.id, expires_at=iso(expiry))
    _print(
        {"device_id": args.id, "code": code, "expires_at": iso(expiry)},
        args.json,
        f"enrollment code for device {args.id} {device.name}: {code}\n"
        f"valid once, until {iso(expiry)}; on the bus:\n"
        f"  bustracker-agent enroll --server URL --code {code} --config /etc/bustracker/agent.toml",
    )


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        import getpass

        password = getpass.getpass("password: ")
    if len(password) < 8:
        raise CliError("password: at least 8 characters")
    return password


def cmd_user(args: argparse.Namespace, settings: Settings) -> int:
    if args.action != "add":
        return _with_store(settings, lambda store: _change_user(args, store))
    password_hash = hash_password(_read_password(args))

    async def work(store: Store) -> int:
        try:
            user = await store.add_user(args.name, password_hash, args.role)
        except Conflict:
            raise CliError(f"a user named {args.name!r} exists already") from None
        _print(
            {"id": user.id, "username": user.username, "role": user.role},
            args.json,
            f"user {user.id} {user.username} ({user.role})",
        )
        return 0

    return _with_store(settings, work)


async def _change_user(args: argparse.Namespace, store: Store) -> int:
    """``user list|role|password|delete``: the API's rules (last admin, sign-ins ended)."""
    if args.action == "list":
        users = await store.list_users()
        rows = [{"id": u.id, "username": u.username, "role": u.role} for u in users]
        text = "\n".join(f"{u.id:>5}  {u.username:<20} {u.role}" for u in users)
        _print({"users": rows}, args.json, text or "no users")
        return 0
    user = await store.user_by_name(args.name)
    if user is None:
        raise CliError(f"no user named {args.name!r}")
    try:
        if args.action == "role":
            await store.update_user(user.id, role=args.role)
            message = f"user {user.username} is now {args.role}"
        elif args.action == "password":
            await store.update_user(user.id, password_hash=hash_password(_read_password(args)))
            message = f"user {user.username}: new password; every sign-in ended"
        else:
            await store.delete_user(user.id)
            message = f"user {user.username} deleted"
    except LastAdmin as exc:
        raise CliError(str(exc)) from None
    _print({"id": user.id, "done": args.action}, args.json, message)
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> int:
        store = open_configured(settings.store)
        applied: list[str] = await store.migrate()
        print(f"applied {', '.join(applied)}" if applied else "schema is current")
        return 0

    return asyncio.run(run())


def check_workers(workers: int, settings: Settings) -> None:
    """Several worker processes must share what one process keeps in memory."""
    if workers < 1:
        raise CliError("--workers: at least 1")
    if workers == 1:
        return
    needs = [
        ("DATABASE_URL", settings.store.database_url, "PostGIS: SQLite takes one writer at a time"),
        (
            "REDIS_URL",
            settings.live.redis_url,
            "rate limits and the live bus shared between workers",
        ),
        ("JWT_SECRET", settings.auth.jwt_secret_configured, "one signing key for every worker"),
    ]
    missing = [f"{name} ({why})" for name, value, why in needs if not value]
    if missing:
        raise CliError(f"--workers {workers} needs " + "; ".join(missing))


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import gc

    import uvicorn

    from server.app import create_app
    from server.logs import configure_logging
    from server.serving import uvicorn_options

    check_workers(args.workers, settings)
    init_error_reports(settings.ops, "serve")
    configure_logging(settings.http.log_format, settings.http.log_level)
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "proxy_headers": True,
        **uvicorn_options(settings),
    }
    if args.workers > 1:
        # Each worker builds its own app from the same environment.
        uvicorn.run("server.app:app_from_env", factory=True, workers=args.workers, **options)
        return 0
    app = create_app(settings)
    # Everything loaded so far lives as long as the process: move it out of the
    # collector's sight, so full collections only walk what requests create.
    gc.freeze()
    uvicorn.run(app, **options)
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from server.alerts import configured_alerts
    from server.worker import Worker
    from server.worker_metrics import WorkerMetrics

    init_error_reports(settings.ops, "worker")

    async def run() -> int:
        store = open_configured(settings.store, migrate=False)
        redis = None
        if settings.live.redis_url:
            import redis.asyncio as aioredis

            redis = aioredis.from_url(settings.live.redis_url, socket_timeout=5)
        metrics = WorkerMetrics()
        http = None
        if not args.once and settings.ops.worker_metrics_port:
            http = metrics.serve(settings.ops.worker_metrics_host, settings.ops.worker_metrics_port)
        worker = Worker(store, settings, configured_alerts(settings.ops), metrics, redis)
        await store.open()
        try:
            if args.once:
                report = await worker.run_pass(upkeep=True)
                if not report.locked:
                    print("another worker holds the maintenance lock: nothing done")
                    return 3
                health = report.health
                assert health is not None
                print(
                    f"created {len(report.created)} partitions, dropped"
                    f" {len(report.expired.partitions)}, deleted {report.expired.rows} fixes;"
                    f" {health.offline} of {health.in_service} vehicles offline"
                    + (f" (alert {report.alert})" if report.alert else "")
                )
                return 0
            await worker.run_forever()
            return 0
        finally:
            if http is not None:
                http.shutdown()
            if redis is not None:
                await redis.aclose()
            await store.close()

    return asyncio.run(run())


def cmd_gtfs(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from server.gtfs_import import ImportRefused, import_feed

    async def work(store: Store) -> int:
        try:
            info, warnings = await import_feed(store, Path(args.file))
        except ImportRefused as exc:
            raise CliError(str(exc)) from None
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        out = {"version": info.version, "routes": info.routes, "trips": info.trips,
               "stops": info.stops, "warnings": list(warnings)}  # fmt: skip
        text = f"imported {args.file}: {info.routes} routes, {info.trips} trips, {info.stops} stops"
        _print(out, args.json, text)
        return 0

    return _with_store(settings, work)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from server.demo import run_demo

    return run_demo(settings, buses=args.buses, host=args.host, port=args.port)


def cmd_check_deployment(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from server.check_deployment import Target, report_line, run_checks, summary

    token = args.device_token
    if args.device_token_file:
        token = Path(args.device_token_file).read_text().strip()
    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
    if args.username and not password:
        raise CliError("--username needs the password on stdin (--password-stdin)")
    target = Target(
        url=args.url.rstrip("/"),
        device_token=token,
        username=args.username,
        password=password,
        ca_file=Path(args.ca_file) if args.ca_file else None,
    )
    results = []
    for result in run_checks(target, settings):
        results.append(result)
        print(report_line(result), flush=True)
    print(f"check-deployment: {summary(results)}")
    return 1 if any(r.outcome == "FAIL" for r in results) else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bustracker", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument(
        "--workers", type=int, default=1, help="server processes (needs DATABASE_URL, REDIS_URL)"
    )
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="server on the embedded defaults + simulated buses")
    demo.add_argument("--buses", type=int, default=5)
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=3000)
    demo.set_defaults(func=cmd_demo)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    worker = sub.add_parser(
        "worker", help="keep the store (partitions, retention, statistics), watch the fleet"
    )
    worker.add_argument("--once", action="store_true", help="one pass, then exit")
    worker.set_defaults(func=cmd_worker)
    check = sub.add_parser(
        "check-deployment", help="run the post-deployment checklist against a running server"
    )
    check.add_argument("url", help="the deployment's base URL, e.g. https://api.bustracker.com")
    check.add_argument("--device-token", help="token of a test device, for the report checks")
    check.add_argument("--device-token-file", help="read the test device's token from a file")
    check.add_argument("--username", help="an operator (viewer is enough) for /v1/fleet/live")
    check.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    check.add_argument("--ca-file", help="trust this CA certificate (staging, self-signed)")
    check.set_defaults(func=cmd_check_deployment)

    device = sub.add_parser("device", help="bus units and their tokens")
    dsub = device.add_subparsers(dest="action", required=True)
    add = dsub.add_parser("add", help="register a bus unit; prints its token once")
    add.add_argument("name")
    add.add_argument("--route")
    for name, helptext in (("rotate", "issue a new token"), ("revoke", "disable the token")):
        action = dsub.add_parser(name, help=helptext)
        action.add_argument("id", type=int)
    code = dsub.add_parser("code", help="a one-time enrollment code for bustracker-agent enroll")
    code.add_argument("id", type=int)
    code.add_argument(
        "--expires-in", type=int, default=86400, help="seconds the code is valid (default 24 h)"
    )
    dsub.add_parser("list", help="list devices")
    for action in dsub.choices.values():
        action.add_argument("--json", action="store_true", help="machine-readable output")
    device.set_defaults(func=cmd_device)

    gtfs = sub.add_parser("gtfs", help="the agency's static GTFS feed")
    gsub = gtfs.add_subparsers(dest="action", required=True)
    gimport = gsub.add_parser("import", help="check a GTFS zip and replace the stored feed with it")
    gimport.add_argument("file", help="the feed, a .zip of GTFS .txt files")
    gimport.add_argument("--json", action="store_true", help="machine-readable output")
    gtfs.set_defaults(func=cmd_gtfs)

    user = sub.add_parser("user", help="operator accounts")
    usub = user.add_subparsers(dest="action", required=True)
    uadd = usub.add_parser("add", help="create an operator account")
    uadd.add_argument("name")
    uadd.add_argument("--role", choices=ROLES, default="operator")
    uadd.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    uadd.add_argument("--json", action="store_true")
    usub.add_parser("list", help="list operator accounts").add_argument(
        "--json", action="store_true"
    )
    urole = usub.add_parser("role", help="change an account's role (applies at once)")
    urole.add_argument("name")
    urole.add_argument("role", choices=ROLES)
    upass = usub.add_parser("password", help="set a new password; every sign-in ends")
    upass.add_argument("name")
    upass.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    usub.add_parser("delete", help="delete an account; its sign-ins end").add_argument("name")
    for changing in ("role", "password", "delete"):
        usub.choices[changing].add_argument("--json", action="store_true")
    user.set_defaults(func=cmd_user)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(os.environ)
        code: int = args.func(args, settings)
        return code
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"bustracker: {problem}", file=sys.stderr)
        return 2
    except (CliError, DemoError) as exc:
        print(f"bustracker: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"bustracker: database unavailable: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
