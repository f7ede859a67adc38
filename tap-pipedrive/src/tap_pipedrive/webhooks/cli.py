"""``tap-pipedrive-webhooks``: serve (the receiver), register, list, remove."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import typing as t

import structlog

from tap_pipedrive.webhooks.credentials import CredentialsError, load
from tap_pipedrive.webhooks.events import DEFAULT_SCHEMA
from tap_pipedrive.webhooks.registration import (
    ADMIN_RULE,
    RegistrationError,
    WebhookApi,
    describe,
    ours,
    register,
    remove,
    url_problem,
)
from tap_pipedrive.webhooks.server import (
    DEFAULT_MAX_BODY_BYTES,
    EVENTS_PATH,
    ReceiverConfig,
    create_app,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tap-pipedrive-webhooks",
        description="Pipedrive webhooks v2 as Pipeboard's change feed.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the receiver (stores events in Postgres)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--database-url",
        default=os.environ.get("PIPEBOARD_WEBHOOK_DATABASE_URL"),
        help="Postgres URL (default: $PIPEBOARD_WEBHOOK_DATABASE_URL)",
    )
    serve.add_argument("--schema", default=DEFAULT_SCHEMA)
    serve.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    serve.add_argument(
        "--public-url",
        help="the public base URL a TLS reverse proxy serves the receiver at (printed first)",
    )
    for name, text in (
        ("register", "create Pipeboard's webhooks (idempotent)"),
        ("list", "show Pipeboard's webhooks"),
        ("remove", "delete Pipeboard's webhooks (only those)"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--api-url", required=True, help="e.g. https://yourcompany.pipedrive.com")
        cmd.add_argument(
            "--api-token",
            default=os.environ.get("PIPEDRIVE_API_TOKEN"),
            help="API token (default: $PIPEDRIVE_API_TOKEN)",
        )
        cmd.add_argument("--subscription-url", required=name == "register")
        if name == "register":
            cmd.add_argument("--user-id", type=int, help="the (admin) user the webhooks act as")
        if name == "list":
            cmd.add_argument("--all", action="store_true", help="every webhook, not only ours")
    return parser


def _configure_logs() -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def serve(args: argparse.Namespace) -> int:
    if not args.database_url:
        print("serve needs --database-url (or PIPEBOARD_WEBHOOK_DATABASE_URL)", file=sys.stderr)
        return 2
    credentials = load()
    _configure_logs()
    import uvicorn

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    base = (args.public_url or f"http://{host}:{port}").rstrip("/")
    print(f"{base}{EVENTS_PATH}", flush=True)
    app = create_app(
        ReceiverConfig(args.database_url, credentials, args.schema, args.max_body_bytes)
    )
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=30
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def manage(args: argparse.Namespace) -> int:
    if not args.api_token:
        print(f"{args.command} needs --api-token (or PIPEDRIVE_API_TOKEN)", file=sys.stderr)
        return 2
    api = WebhookApi(args.api_url, args.api_token)
    if args.command == "register":
        problem = url_problem(args.subscription_url)
        if problem is not None and "//" in args.subscription_url:
            print(
                f"note: {problem}; Pipedrive delivers only to a public URL "
                "(fine for a local simulator)",
                file=sys.stderr,
            )
        outcomes = register(api, args.subscription_url, load(), args.user_id)
        for outcome in outcomes:
            print(describe(outcome))
        user = api.current_user()
        if user is not None and args.user_id is None and not user.get("is_admin"):
            print(f"warning: this token's user is not an admin; {ADMIN_RULE}", file=sys.stderr)
        return 0
    if args.command == "list":
        from tap_pipedrive.webhooks.registration import Outcome

        for hook in api.hooks():
            if args.all or ours(hook, args.subscription_url):
                print(describe(Outcome(hook, "ours" if ours(hook) else "other")))
        return 0
    for outcome in remove(api, args.subscription_url):
        print(describe(outcome))
    return 0


def main(argv: t.Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        return manage(args)
    except (CredentialsError, RegistrationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
