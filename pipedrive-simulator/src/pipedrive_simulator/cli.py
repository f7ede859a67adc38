"""``pipedrive-simulator``: serve a seeded simulated Pipedrive account until killed."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from pipedrive_simulator.handle import start
from pipedrive_simulator.ratelimit import PLANS

SIZE_OPTIONS = (
    "persons",
    "organizations",
    "activities",
    "notes",
    "products",
    "leads",
    "files",
    "users",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipedrive-simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--deals", type=int, default=None, help="number of deals (default 500)")
    parser.add_argument("--plan", default="unlimited", choices=sorted(PLANS))
    parser.add_argument("--api-token", default=None, help="token to accept (default: random)")
    for name in SIZE_OPTIONS:
        parser.add_argument(
            f"--{name}",
            type=int,
            default=None,
            help=f"number of {name} (default: scales with --deals)",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sizes = {name: getattr(args, name) for name in SIZE_OPTIONS}
    try:
        handle = start(
            seed=args.seed,
            deals=args.deals,
            plan=args.plan,
            host=args.host,
            port=args.port,
            api_token=args.api_token,
            **sizes,
        )
    except (ValueError, OSError) as exc:
        print(f"pipedrive-simulator: {exc}", file=sys.stderr)
        return 2
    print(f"serving {handle.base_url} token={handle.api_token}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    handle.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
