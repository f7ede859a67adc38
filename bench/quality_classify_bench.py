"""The database-side cost of the target's data-quality classification of an upsert batch
(inserted / updated / unchanged, target_pipeboard_postgres.quality.classify_staged), side by side
with the upsert statement it precedes.

    python bench/quality_classify_bench.py [--database-url URL] [--rows 100000] [--batches 10]

A deals-like table (id plus 70 columns: text, numeric, timestamptz, jsonb, bigint) of ``--rows``
rows; each batch stages 10,000 of its rows (half of them changed), classifies them and upserts
them, in one transaction, with the target's session settings (temp_buffers 256MB). Medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

import psycopg
from psycopg import sql
from target_pipeboard_postgres import sql as tsql
from target_pipeboard_postgres.quality import classify_staged

DEFAULT_URL = os.environ.get(
    "PIPEBOARD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
KINDS = ["text"] * 20 + ["numeric"] * 15 + ["timestamptz"] * 10 + ["jsonb"] * 15 + ["bigint"] * 10
VALUES = {
    "text": "md5(g::text || '{i}')",
    "numeric": "(g * {i})::numeric / 7",
    "timestamptz": "timestamptz '2024-01-01' + g * interval '1 minute'",
    "jsonb": "jsonb_build_object('a', g, 'b', md5(g::text))",
    "bigint": "g * {i}",
}
BATCH = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args()
    schema = f"bench_quality_{uuid.uuid4().hex[:6]}"
    columns = [("id", "bigint")] + [(f"c{i}", kind) for i, kind in enumerate(KINDS)]
    names = [name for name, _ in columns]
    listed = sql.SQL(", ").join(sql.Identifier(n) for n in names)
    table = sql.Identifier(schema, "deals")
    select = ", ".join(["g"] + [VALUES[k].format(i=i) for i, k in enumerate(KINDS)])
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute("SET temp_buffers = '256MB'")  # as the target's sessions
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            conn.execute(tsql.create_table(schema, "deals", columns, ["id"]))
            conn.execute(
                sql.SQL("INSERT INTO {} SELECT {} FROM generate_series(1, %s) g").format(
                    table, sql.SQL(select)
                ),
                (args.rows,),
            )
            conn.execute(sql.SQL("ANALYZE {}").format(table))
            classify_s, upsert_s = [], []
            for batch in range(args.batches):
                low = (batch * BATCH) % args.rows
                with conn.transaction():
                    stage = f"pb_stage_{uuid.uuid4().hex[:8]}"
                    conn.execute(tsql.create_stage(stage, columns))
                    conn.execute(
                        sql.SQL(
                            "INSERT INTO {} ({}) SELECT {} FROM {} WHERE id > %s AND id <= %s"
                        ).format(sql.Identifier(stage), listed, listed, table),
                        (low, low + BATCH),
                    )
                    conn.execute(
                        sql.SQL("UPDATE {} SET c0 = 'changed' WHERE id % 2 = 0").format(
                            sql.Identifier(stage)
                        )
                    )
                    started = time.perf_counter()
                    counts = classify_staged(conn, stage, schema, "deals", names, ["id"])
                    classify_s.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    conn.execute(
                        tsql.upsert_on_conflict(
                            schema, "deals", stage, names, ["id"], hard_delete=False
                        )
                    )
                    upsert_s.append(time.perf_counter() - started)
            classify, upsert = statistics.median(classify_s), statistics.median(upsert_s)
            print(f"last batch classified (inserted, updated, unchanged): {counts}")
            print(
                f"per {BATCH:,}-row batch into {args.rows:,} rows: classification "
                f"{classify * 1000:.1f} ms, upsert {upsert * 1000:.1f} ms "
                f"({classify / upsert:.1%} of the upsert)"
            )
        finally:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


if __name__ == "__main__":
    main()
