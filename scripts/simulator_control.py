"""The demo's calls to the Pipedrive simulator's control API (never charged API tokens).

python scripts/simulator_control.py URL changes --seconds 3600 --count 25
python scripts/simulator_control.py URL stats
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from typing import Any


def call(base_url: str, path: str, payload: dict[str, Any] | None = None) -> Any:
    """GET (or POST ``payload``) ``/_simulator/<path>`` and return the decoded JSON."""
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(  # noqa: S310 - the local simulator's URL, http only
        f"{base_url.rstrip('/')}/_simulator/{path}",
        data=data,
        headers={"Content-Type": "application/json"},
        method="POST" if data is not None else "GET",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        body = response.read()
    return json.loads(body) if body else None


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url")
    parser.add_argument("command", choices=["changes", "stats"])
    parser.add_argument("--seconds", type=float, default=3600)
    parser.add_argument("--count", type=int, default=25)
    args = parser.parse_args(argv)
    if args.command == "changes":
        call(args.url, "advance", {"seconds": args.seconds})
        answer = call(args.url, "mutate", {"op": "random_changes", "n": args.count, "seed": 1})
        summary = answer.get("result", answer) if isinstance(answer, dict) else {}
        made = ", ".join(f"{n} {kind}" for kind, n in sorted(summary.items()) if n)
        print(f"simulated changes in Pipedrive: {made or 'none'}")
    else:
        total = call(args.url, "stats")["total"]
        print(
            f"this run made {total['requests']} API requests costing {total['tokens']} tokens"
            f" ({total['responses_429']} rate-limited)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
