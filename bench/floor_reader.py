"""The least any Python tap does per deal: read the pages, parse them, write RECORD lines.

``python bench/floor_reader.py BASE_URL TOKEN [--start-up-only]`` pages through
``/api/v2/deals`` and ``/api/v2/deals/archived`` (500 a page, in ``update_time`` order, as the
tap asks) with requests and orjson and writes one Singer RECORD line per deal, nothing else: no
schema, no custom-field columns, no state. bench/tap_bench.py runs it beside the tap, in the
same minutes, so the tap's rate can be read against this floor on a machine whose speed varies
from hour to hour. ``--start-up-only`` stops after the imports and the session, so that the
floor's start-up can be taken off its CPU time, as the tap's start-up is taken off the tap's.
"""

from __future__ import annotations

import sys

import orjson
import requests


def main(base_url: str, token: str, *options: str) -> int:
    with requests.Session() as session:
        session.headers["x-api-token"] = token
        if "--start-up-only" in options:
            return 0
        for path in ("/api/v2/deals", "/api/v2/deals/archived"):
            read_list(session, f"{base_url}{path}")
    return 0


def read_list(session: requests.Session, url: str) -> None:
    out = sys.stdout.buffer
    params: dict[str, str | int] = {
        "limit": 500,
        "sort_by": "update_time",
        "sort_direction": "asc",
        "status": "open,won,lost,deleted",
    }
    while True:
        response = session.get(url, params=params, timeout=600)
        response.raise_for_status()
        body = orjson.loads(response.content)
        lines = [
            orjson.dumps({"type": "RECORD", "stream": "deals", "record": row})
            for row in body["data"]
        ]
        if lines:
            out.write(b"\n".join(lines) + b"\n")
        cursor = (body.get("additional_data") or {}).get("next_cursor")
        if not cursor:
            return
        params["cursor"] = cursor


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
