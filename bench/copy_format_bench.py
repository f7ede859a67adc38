"""Text vs binary COPY for the target's rows: which is faster end to end in Python?

    python bench/copy_format_bench.py [--rows 20000] [--database-url URL]

Loads the first ``--rows`` records of the generated deals-like Singer file (bench/out, made by
``target_bench.py generate``) with the target into a scratch schema, reads them back as the
target holds them before COPY (date-times as ISO text, numbers as JSON numbers, objects as
parsed JSON), then times, in one process and the same transaction shape, the two ways of
sending them:

- text: objects dumped to JSON text with orjson, ``COPY ... FROM STDIN`` (text), ``write_row``
  (what the target does);
- binary: date-times, dates and times parsed into Python objects, fractional numbers made
  ``Decimal`` (psycopg's binary numeric dumper refuses floats), objects wrapped in ``Jsonb``
  (dumped with orjson), ``copy.set_types`` with the column types, ``COPY ... (FORMAT BINARY)``.

Each is run ``--repeat`` times into a fresh temporary table; the best time is reported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb, set_json_dumps

ROOT = Path(__file__).resolve().parents[1]
TARGET = Path(sys.executable).with_name("target-pipeboard-postgres")


def _load_sample(url: str, schema: str, rows: int) -> None:
    source = ROOT / "bench" / "out" / "deals_100000.singer"
    if not source.exists():
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "target_bench.py"),
                "--rows",
                "100000",
                "generate",
            ],
            check=True,
        )
    lines = []
    with source.open() as handle:
        for line in handle:
            lines.append(line)
            if len(lines) > rows:
                break
    config = {"database_url": url, "default_target_schema": schema}
    config_file = ROOT / "bench" / "out" / f"copy_format_{schema}.json"
    config_file.write_text(json.dumps(config))
    subprocess.run(
        [str(TARGET), "--config", str(config_file)],
        input="".join(lines),
        text=True,
        check=True,
        capture_output=True,
    )


def _parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    schema = f"copy_format_{uuid.uuid4().hex[:8]}"
    set_json_dumps(lambda obj: orjson.dumps(obj).decode())
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
    try:
        _load_sample(args.database_url, schema, args.rows)
        with psycopg.connect(args.database_url) as conn:
            columns = conn.execute(
                "select column_name, data_type from information_schema.columns"
                " where table_schema = %s and table_name = 'deals' order by ordinal_position",
                (schema,),
            ).fetchall()
            names = [name for name, _ in columns]
            kinds = [kind for _, kind in columns]
            # Values as the target holds them: date-times as text, objects parsed.
            select = sql.SQL(", ").join(
                sql.SQL("{}::text").format(sql.Identifier(n))
                if k.startswith(("timestamp", "date", "time"))
                else sql.SQL("{}::float8").format(sql.Identifier(n))
                if k == "numeric"
                else sql.Identifier(n)
                for n, k in columns
            )
            base = conn.execute(
                sql.SQL("select {} from {}.deals").format(select, sql.Identifier(schema))
            ).fetchall()
            conn.rollback()
            json_at = [i for i, k in enumerate(kinds) if k == "jsonb"]
            time_at = [i for i, k in enumerate(kinds) if k.startswith("timestamp")]
            date_at = [i for i, k in enumerate(kinds) if k == "date"]
            clock_at = [i for i, k in enumerate(kinds) if k.startswith("time ")]
            numeric_at = [i for i, k in enumerate(kinds) if k == "numeric"]
            oids = [
                conn.execute("select %s::regtype::oid", (k,)).fetchone()[0]  # type: ignore[index]
                for k in kinds
            ]
            conn.rollback()

            def text_rows() -> list[list[Any]]:
                out = []
                for row in base:
                    values = list(row)
                    for i in json_at:
                        if values[i] is not None:
                            values[i] = orjson.dumps(values[i]).decode()
                    out.append(values)
                return out

            def binary_rows() -> list[list[Any]]:
                out = []
                for row in base:
                    values = list(row)
                    for i in json_at:
                        if values[i] is not None:
                            values[i] = Jsonb(values[i])
                    for i in time_at:
                        if values[i] is not None:
                            values[i] = _parse_time(values[i])
                    for i in date_at:
                        if values[i] is not None:
                            values[i] = dt.date.fromisoformat(values[i])
                    for i in clock_at:
                        if values[i] is not None:
                            values[i] = dt.time.fromisoformat(values[i])
                    for i in numeric_at:  # binary numeric takes Decimal or int, not float
                        if type(values[i]) is float:
                            values[i] = Decimal(repr(values[i]))
                    out.append(values)
                return out

            def run(binary: bool) -> float:
                started = time.perf_counter()
                rows = binary_rows() if binary else text_rows()
                with conn.cursor() as cur:
                    cur.execute(
                        sql.SQL("create temp table stage (like {}.deals) on commit drop").format(
                            sql.Identifier(schema)
                        )
                    )
                    target = sql.SQL("copy stage ({}) from stdin{}").format(
                        sql.SQL(", ").join(map(sql.Identifier, names)),
                        sql.SQL(" (format binary)") if binary else sql.SQL(""),
                    )
                    with cur.copy(target) as copy:
                        if binary:
                            copy.set_types(oids)
                        for values in rows:
                            copy.write_row(values)
                conn.commit()
                return time.perf_counter() - started

            results = {}
            for label, binary in (("text", False), ("binary", True)):
                results[label] = min(run(binary) for _ in range(args.repeat))
            for label, seconds in results.items():
                print(
                    f"{label:>6}: {len(base):,} rows in {seconds:.2f} s, "
                    f"{len(base) / seconds:,.0f} rows/s (best of {args.repeat})"
                )
    finally:
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))


if __name__ == "__main__":
    main()
