"""Partitioned history: a history table of at least 10 million rows, monthly range-partitioned
by ``_valid_from`` and not, and what that changes for loading and for typical BI queries.

    nice -n 10 python bench/partition_bench.py --rows 10000000 [--deals 200000] [--keep]
    nice -n 10 python bench/partition_bench.py --target-only --target-rows 500000

Part one builds the tables in SQL (``generate_series``), shaped like a history-mode table
(``deals_history``: key ``id``, ``_valid_from``/``_valid_to``/``_is_current``, the deal columns
BI reads) and keyed as the target keys it (primary key (id, _valid_from), an index of the open
version per id), in three variants:

- ``flat``: not partitioned, as the target creates a history table;
- ``flat_indexed``: the same plus an index on ``_valid_from`` (the unpartitioned alternative
  for time-range queries);
- ``partitioned``: ``PARTITION BY RANGE (_valid_from)``, one partition per month and a DEFAULT.

Then each query runs warm several times (the median is reported): one month of history, one
deal's history, the state of all deals as of a date, the open versions; and retention: removing
the oldest month (DELETE on the flat tables, DROP of the partition).

Part two times the target itself (its real CLI, one process per run) loading a changelog-like
stream of ``--target-rows`` rows spread over 24 months, in batches of ``--batch-rows``, into an
empty schema, then an upsert pass of the same keys, with and without ``partitioned_tables``.

Everything happens in the schema ``pb_partition_bench`` (dropped at the end unless ``--keep``).
Figures print as a Markdown table (stdout) and as JSON (``--json FILE``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "pb_partition_bench"
DEFAULT_URL = os.environ.get(
    "PIPEBOARD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
START = datetime(2021, 1, 1, tzinfo=UTC)
MONTHS = 60
VARIANTS = ("flat", "flat_indexed", "partitioned")
COLUMNS = (
    "id bigint NOT NULL, title text, value numeric, currency text, stage_id integer, "
    "pipeline_id integer, status text, owner_id integer, update_time timestamptz, "
    "_valid_from timestamptz NOT NULL, _valid_to timestamptz, "
    "_is_current boolean NOT NULL DEFAULT true"
)


def _log(message: str) -> None:
    print(f"[{datetime.now(tz=UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _timed(conn: psycopg.Connection[Any], statement: sql.Composable, **params: Any) -> float:
    started = time.perf_counter()
    conn.execute(statement, params or None)
    return time.perf_counter() - started


def _create(conn: psycopg.Connection[Any], variant: str) -> None:
    table = sql.Identifier(SCHEMA, variant)
    partition = (
        sql.SQL(" PARTITION BY RANGE (_valid_from)") if variant == "partitioned" else sql.SQL("")
    )
    conn.execute(
        sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY (id, _valid_from)){}").format(
            table, sql.SQL(COLUMNS), partition
        )
    )
    if variant != "partitioned":
        return
    for month in range(MONTHS + 1):
        lo = _add_months(START, month)
        conn.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(SCHEMA, f"partitioned_p{lo:%Y%m}"),
                table,
                sql.Literal(lo),
                sql.Literal(_add_months(lo, 1)),
            )
        )
    conn.execute(
        sql.SQL("CREATE TABLE {} PARTITION OF {} DEFAULT").format(
            sql.Identifier(SCHEMA, "partitioned_default"), table
        )
    )


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return moment.replace(year=index // 12, month=index % 12 + 1, day=1)


def _fill(conn: psycopg.Connection[Any], variant: str, rows: int, deals: int) -> float:
    """Versions: deal ``id`` gets ``rows/deals`` versions, 36 days apart, staggered per deal."""
    versions = rows // deals
    step = (MONTHS * 30 - 40) / versions
    statement = sql.SQL(
        "INSERT INTO {t} SELECT id, 'Deal ' || id, (id % 997) * 100 + k, 'EUR', 1 + (id + k) % 40,"
        " 1 + id % 5, CASE WHEN k = {last} THEN (ARRAY['open','won','lost'])[1 + id % 3]"
        " ELSE 'open' END, 1 + id % 50, vf, vf, CASE WHEN k = {last} THEN NULL ELSE vf +"
        " make_interval(secs => {step} * 86400) END, k = {last}"
        " FROM (SELECT 1 + g % {deals} AS id, g / {deals} AS k,"
        " {start}::timestamptz + make_interval(secs => (g / {deals}) * {step} * 86400"
        " + (g % {deals}) % 2000 * 600) AS vf FROM generate_series(0, {n}) g) s"
    ).format(
        t=sql.Identifier(SCHEMA, variant),
        last=sql.Literal(versions - 1),
        step=sql.Literal(step),
        deals=sql.Literal(deals),
        start=sql.Literal(START),
        n=sql.Literal(versions * deals - 1),
    )
    seconds = _timed(conn, statement)
    seconds += _timed(
        conn,
        sql.SQL("CREATE INDEX {} ON {} (id) WHERE _valid_to IS NULL").format(
            sql.Identifier(f"{variant}_current"), sql.Identifier(SCHEMA, variant)
        ),
    )
    if variant == "flat_indexed":
        seconds += _timed(
            conn,
            sql.SQL("CREATE INDEX {} ON {} (_valid_from)").format(
                sql.Identifier(f"{variant}_valid_from"), sql.Identifier(SCHEMA, variant)
            ),
        )
    conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(SCHEMA, variant)))
    return seconds


QUERIES: dict[str, str] = {
    "one month of history (versions started in June 2023, per stage)": (
        "SELECT stage_id, count(*), sum(value) FROM {t} WHERE _valid_from >= '2023-06-01' "
        "AND _valid_from < '2023-07-01' GROUP BY stage_id"
    ),
    "one deal's history (all versions of one id)": (
        "SELECT * FROM {t} WHERE id = 123457 % {deals} + 1 ORDER BY _valid_from"
    ),
    "as of 2023-06-15: state of all deals, per stage": (
        "SELECT stage_id, count(*), sum(value) FROM {t} WHERE _valid_from <= '2023-06-15' "
        "AND (_valid_to > '2023-06-15' OR _valid_to IS NULL) GROUP BY stage_id"
    ),
    "as of 2023-06-15, one deal": (
        "SELECT * FROM {t} WHERE id = 4242 AND _valid_from <= '2023-06-15' "
        "AND (_valid_to > '2023-06-15' OR _valid_to IS NULL)"
    ),
    "open versions (current state), per status": (
        "SELECT status, count(*) FROM {t} WHERE _valid_to IS NULL GROUP BY status"
    ),
}


def _query_times(
    conn: psycopg.Connection[Any], variant: str, deals: int, repeat: int
) -> dict[str, float]:
    times: dict[str, float] = {}
    for name, text in QUERIES.items():
        statement = sql.SQL(text).format(
            t=sql.Identifier(SCHEMA, variant), deals=sql.Literal(deals)
        )
        conn.execute(statement).fetchall()  # warm
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            conn.execute(statement).fetchall()
            samples.append(time.perf_counter() - started)
        times[name] = statistics.median(samples)
        _log(f"{variant}: {name}: {times[name] * 1000:.1f} ms")
    return times


def _retention(conn: psycopg.Connection[Any], variant: str) -> float:
    """Remove the oldest month (January 2021)."""
    if variant == "partitioned":
        return _timed(
            conn, sql.SQL("DROP TABLE {}").format(sql.Identifier(SCHEMA, "partitioned_p202101"))
        )
    return _timed(
        conn,
        sql.SQL("DELETE FROM {} WHERE _valid_from < '2021-02-01'").format(
            sql.Identifier(SCHEMA, variant)
        ),
    )


def _size(conn: psycopg.Connection[Any], variant: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
        "AND c.relkind = 'r' AND c.relname LIKE %s",
        (SCHEMA, f"{variant}%" if variant == "partitioned" else variant),
    ).fetchone()
    return int(row[0]) if row else 0


def sql_part(url: str, rows: int, deals: int, repeat: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET max_parallel_workers_per_gather = 0")  # 2 shared cores: comparable
        for variant in VARIANTS:
            _create(conn, variant)
            _log(f"{variant}: loading {rows:,} rows")
            load = _fill(conn, variant, rows, deals)
            count = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, variant))
            ).fetchone()
            _log(f"{variant}: {count[0] if count else 0:,} rows in {load:.1f} s")
            results[variant] = {
                "rows": count[0] if count else 0,
                "load_seconds": load,
                "bytes": _size(conn, variant),
                "queries": _query_times(conn, variant, deals, repeat),
            }
        for variant in VARIANTS:
            seconds = _retention(conn, variant)
            results[variant]["drop_oldest_month_seconds"] = seconds
            _log(f"{variant}: oldest month removed in {seconds:.2f} s")
    return results


# ---------------------------------------------------------------------------------------------
# Part two: the target


def _singer_file(path: Path, rows: int, *, updated: bool) -> None:
    """A changelog-like stream: key ``id``, time ``changed_at`` over 24 months."""
    schema = {
        "type": "SCHEMA",
        "stream": "deal_changes",
        "key_properties": ["id"],
        "schema": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "deal_id": {"type": ["integer", "null"]},
                "column_name": {"type": ["string", "null"]},
                "old_value": {"type": ["string", "null"]},
                "new_value": {"type": ["string", "null"]},
                "changed_at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
    }
    start = datetime(2024, 1, 1, tzinfo=UTC)
    span = 24 * 30 * 86400
    with path.open("w") as out:
        out.write(json.dumps(schema) + "\n")
        for i in range(rows):
            moment = start + timedelta(seconds=(i * 7919) % span)
            record = {
                "id": i + 1,
                "deal_id": 1 + i % 20000,
                "column_name": "stage_id",
                "old_value": str(i % 40),
                "new_value": str((i + 1) % 40 + (1000 if updated else 0)),
                "changed_at": moment.isoformat(),
            }
            out.write(
                json.dumps({"type": "RECORD", "stream": "deal_changes", "record": record}) + "\n"
            )


def _run_target(url: str, schema: str, partitioned: bool, batch: int, singer: Path) -> float:
    config: dict[str, Any] = {
        "database_url": url,
        "default_target_schema": schema,
        "batch_size_rows": batch,
        "data_quality": False,
    }
    if partitioned:
        config["partitioned_tables"] = {"deal_changes": "changed_at"}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle)
    exe = ROOT / ".venv" / "bin" / "target-pipeboard-postgres"
    started = time.perf_counter()
    with singer.open("rb") as stdin:
        result = subprocess.run(
            [str(exe), "--config", handle.name],
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
    if result.returncode != 0:
        sys.exit(result.stderr.decode(errors="replace")[-3000:])
    seconds = time.perf_counter() - started
    os.unlink(handle.name)
    return seconds


def target_part(url: str, rows: int, batch: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        first, second = Path(tmp) / "load.singer", Path(tmp) / "upsert.singer"
        _singer_file(first, rows, updated=False)
        _singer_file(second, rows, updated=True)
        for partitioned in (False, True):
            schema = f"{SCHEMA}_{'part' if partitioned else 'flat'}"
            name = "partitioned" if partitioned else "flat"
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )
            load = _run_target(url, schema, partitioned, batch, first)
            upsert = _run_target(url, schema, partitioned, batch, second)
            with psycopg.connect(url, autocommit=True) as conn:
                count = conn.execute(
                    sql.SQL("SELECT count(*), count(DISTINCT tableoid) FROM {}").format(
                        sql.Identifier(schema, "deal_changes")
                    )
                ).fetchone()
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            _log(f"target {name}: load {load:.1f} s, upsert {upsert:.1f} s, rows/tables {count}")
            results[name] = {
                "load_seconds": load,
                "upsert_seconds": upsert,
                "rows": count[0] if count else 0,
                "tables_holding_rows": count[1] if count else 0,
            }
    return results


def _markdown(figures: dict[str, Any]) -> str:
    lines = []
    part = figures.get("sql")
    if part:
        lines.append("| measurement | " + " | ".join(VARIANTS) + " |")
        lines.append("|---|" + "---:|" * len(VARIANTS))
        lines.append("| rows | " + " | ".join(f"{part[v]['rows']:,}" for v in VARIANTS) + " |")
        lines.append(
            "| bulk load incl. indexes (s) | "
            + " | ".join(f"{part[v]['load_seconds']:.1f}" for v in VARIANTS)
            + " |"
        )
        lines.append(
            "| size on disk (MB) | "
            + " | ".join(f"{part[v]['bytes'] / 1e6:,.0f}" for v in VARIANTS)
            + " |"
        )
        for name in QUERIES:
            lines.append(
                f"| {name} (ms, median) | "
                + " | ".join(f"{part[v]['queries'][name] * 1000:,.1f}" for v in VARIANTS)
                + " |"
            )
        lines.append(
            "| remove the oldest month (s) | "
            + " | ".join(f"{part[v]['drop_oldest_month_seconds']:.2f}" for v in VARIANTS)
            + " |"
        )
    target = figures.get("target")
    if target:
        lines.append("")
        lines.append("| target run | not partitioned | partitioned |")
        lines.append("|---|---:|---:|")
        for key, label in (
            ("load_seconds", "initial load (s)"),
            ("upsert_seconds", "upsert pass (s)"),
        ):
            lines.append(
                f"| {label} | {target['flat'][key]:.1f} | {target['partitioned'][key]:.1f} |"
            )
        lines.append(
            f"| tables holding the rows | {target['flat']['tables_holding_rows']} | "
            f"{target['partitioned']['tables_holding_rows']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--deals", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--target-rows", type=int, default=500_000)
    parser.add_argument("--batch-rows", type=int, default=100_000)
    parser.add_argument("--sql-only", action="store_true")
    parser.add_argument("--target-only", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the bench schema")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures: dict[str, Any] = {"started": datetime.now(tz=UTC).isoformat(), "load": os.getloadavg()}
    if not args.target_only:
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        try:
            figures["sql"] = sql_part(args.database_url, args.rows, args.deals, args.repeat)
        finally:
            if not args.keep:
                with psycopg.connect(args.database_url, autocommit=True) as conn:
                    conn.execute(
                        sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA))
                    )
    if not args.sql_only:
        figures["target"] = target_part(args.database_url, args.target_rows, args.batch_rows)
    figures["load_after"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    print(_markdown(figures))


if __name__ == "__main__":
    main()
