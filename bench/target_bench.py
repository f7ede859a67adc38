"""Benchmark of target-pipeboard-postgres against a plain psycopg 3 COPY loader (and, with
--compare, the existing Postgres targets installed into their own virtualenvs under
bench/.venvs/).

    python bench/target_bench.py --rows 100000 [--rows 1000000] [--compare] [--database-url URL]

Each run is a separate process, measured for wall time and peak RSS; every loader gets the same
generated Singer file (deals-like: ~30 standard fields, 40 custom fields with nested objects,
~10% nulls) and the same Postgres. An initial load into an empty schema is followed by an upsert
pass of the same file (every key exists).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import comparison

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
ROOT = HERE.parent
DEFAULT_URL = os.environ.get(
    "PIPEBOARD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
STREAM = "deals"
# name -> (pinned PyPI package, console script); their virtualenvs go under bench/.venvs/
COMPETITORS = {
    "meltanolabs": ("meltanolabs-target-postgres==0.8.1", "target-postgres"),
    "pipelinewise": ("pipelinewise-target-postgres==2.1.2", "target-postgres"),
}

# ---------------------------------------------------------------------------------------------
# The input


def _custom_fields(rng: random.Random) -> list[tuple[str, dict]]:
    kinds = [
        "varchar",
        "double",
        "monetary",
        "enum",
        "set",
        "date",
        "address",
        "user",
        "text",
        "phone",
    ]
    fields = []
    for i in range(40):
        key = f"{rng.getrandbits(160):040x}"
        kind = kinds[i % len(kinds)]
        if kind == "monetary":
            schema = {
                "type": ["null", "object"],
                "properties": {
                    "value": {"type": ["null", "number"]},
                    "currency": {"type": ["null", "string"]},
                },
            }
        elif kind == "address":
            schema = {
                "type": ["null", "object"],
                "properties": {
                    p: {"type": ["null", "string"]}
                    for p in (
                        "value",
                        "street_number",
                        "route",
                        "locality",
                        "country",
                        "postal_code",
                        "formatted_address",
                    )
                },
            }
        elif kind == "set":
            schema = {"type": ["null", "array"], "items": {"type": "integer"}}
        elif kind in {"double"}:
            schema = {"type": ["null", "number"]}
        elif kind in {"enum", "user"}:
            schema = {"type": ["null", "integer"]}
        elif kind == "date":
            schema = {"type": ["null", "string"], "format": "date"}
        else:
            schema = {"type": ["null", "string"]}
        schema["x-pipedrive-key"] = key
        fields.append((key, schema))
    return fields


def _standard_schema() -> dict[str, dict]:
    s = lambda: {"type": ["null", "string"]}  # noqa: E731
    i = lambda: {"type": ["null", "integer"]}  # noqa: E731
    ts = lambda: {"type": ["null", "string"], "format": "date-time"}  # noqa: E731
    return {
        "id": {"type": "integer"},
        "title": s(),
        "value": {"type": ["null", "number"]},
        "currency": s(),
        "status": s(),
        "stage_id": i(),
        "pipeline_id": i(),
        "person_id": i(),
        "org_id": i(),
        "owner_id": i(),
        "creator_user_id": i(),
        "add_time": ts(),
        "update_time": ts(),
        "close_time": ts(),
        "won_time": ts(),
        "lost_time": ts(),
        "stage_change_time": ts(),
        "expected_close_date": {"type": ["null", "string"], "format": "date"},
        "probability": {"type": ["null", "number"]},
        "lost_reason": s(),
        "visible_to": s(),
        "label_ids": {"type": ["null", "array"], "items": {"type": "integer"}},
        "is_deleted": {"type": ["null", "boolean"]},
        "is_archived": {"type": ["null", "boolean"]},
        "archive_time": ts(),
        "origin": s(),
        "origin_id": s(),
        "channel": i(),
        "channel_id": s(),
        "acv": {"type": ["null", "number"]},
    }


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write the Singer file: one SCHEMA, `rows` RECORDs, a STATE every 10,000 records."""
    rng = random.Random(seed)
    custom = _custom_fields(rng)
    properties = _standard_schema() | dict(custom)
    start = datetime(2023, 1, 1, tzinfo=UTC)
    words = [
        "Acme",
        "Globex",
        "Initech",
        "Umbrella",
        "Hooli",
        "Stark",
        "Wayne",
        "Tyrell",
        "deal",
        "renewal",
        "pilot",
        "expansion",
    ]
    with path.open("w") as out:
        out.write(
            json.dumps(
                {
                    "type": "SCHEMA",
                    "stream": STREAM,
                    "key_properties": ["id"],
                    "schema": {"type": "object", "properties": properties},
                }
            )
            + "\n"
        )
        for n in range(1, rows + 1):

            def maybe(value):
                return None if rng.random() < 0.1 else value

            t = start + timedelta(minutes=n)
            iso = t.isoformat().replace("+00:00", "Z")
            rec = {
                "id": n,
                "title": maybe(" ".join(rng.choices(words, k=4))),
                "value": maybe(round(rng.uniform(100, 90000), 2)),
                "currency": maybe("EUR"),
                "status": maybe(rng.choice(["open", "won", "lost"])),
                "stage_id": maybe(rng.randint(1, 30)),
                "pipeline_id": maybe(rng.randint(1, 5)),
                "person_id": maybe(rng.randint(1, 10**6)),
                "org_id": maybe(rng.randint(1, 10**5)),
                "owner_id": maybe(rng.randint(1, 200)),
                "creator_user_id": maybe(rng.randint(1, 200)),
                "add_time": maybe(iso),
                "update_time": iso,
                "close_time": maybe(iso),
                "won_time": maybe(iso),
                "lost_time": maybe(iso),
                "stage_change_time": maybe(iso),
                "expected_close_date": maybe(t.date().isoformat()),
                "probability": maybe(rng.randint(0, 100)),
                "lost_reason": maybe(rng.choice(words)),
                "visible_to": maybe("3"),
                "label_ids": maybe(rng.sample(range(1, 20), 3)),
                "is_deleted": maybe(False),
                "is_archived": maybe(False),
                "archive_time": None,
                "origin": maybe("API"),
                "origin_id": None,
                "channel": maybe(rng.randint(1, 9)),
                "channel_id": maybe("web"),
                "acv": maybe(round(rng.uniform(0, 10000), 2)),
            }
            for key, schema in custom:
                kinds = schema["type"]
                if "object" in kinds and "currency" in schema["properties"]:
                    value = {"value": round(rng.uniform(1, 5000), 2), "currency": "USD"}
                elif "object" in kinds:
                    value = {
                        "value": f"{rng.randint(1, 300)} Main Street, Springfield",
                        "street_number": str(rng.randint(1, 300)),
                        "route": "Main Street",
                        "locality": "Springfield",
                        "country": "United States",
                        "postal_code": f"{rng.randint(10000, 99999)}",
                        "formatted_address": "Main Street, Springfield, USA",
                    }
                elif "array" in kinds:
                    value = rng.sample(range(1, 60), 2)
                elif "number" in kinds:
                    value = round(rng.uniform(0, 1000), 3)
                elif "integer" in kinds:
                    value = rng.randint(1, 500)
                elif schema.get("format") == "date":
                    value = (t - timedelta(days=rng.randint(0, 400))).date().isoformat()
                else:
                    value = " ".join(rng.choices(words, k=rng.randint(2, 12)))
                rec[key] = maybe(value)
            out.write(
                json.dumps(
                    {"type": "RECORD", "stream": STREAM, "record": rec, "time_extracted": iso}
                )
                + "\n"
            )
            if n % 10_000 == 0:
                out.write(
                    json.dumps(
                        {
                            "type": "STATE",
                            "value": {"bookmarks": {STREAM: {"replication_key_value": iso}}},
                        }
                    )
                    + "\n"
                )


# ---------------------------------------------------------------------------------------------
# The plain psycopg 3 COPY loader: the ceiling for a Python loader


def plain_copy(path: Path, url: str, schema: str, upsert: bool) -> None:
    import orjson
    import psycopg
    from psycopg import sql
    from target_pipeboard_postgres import column_types

    with path.open("rb") as source, psycopg.connect(url, autocommit=True) as conn:
        first = orjson.loads(source.readline())
        props = first["schema"]["properties"]
        names = list(props)
        kinds = [column_types.sql_type(p) for p in props.values()]
        json_cols = [i for i, k in enumerate(kinds) if k == "jsonb"]
        table = sql.Identifier(schema, "deals")
        cols = sql.SQL(", ").join(map(sql.Identifier, names))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY (id))").format(
                table,
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(k))
                    for n, k in zip(names, kinds, strict=True)
                ),
            )
        )
        conn.execute("SET TIME ZONE 'UTC'")

        def flush(batch: list[list]) -> None:
            with conn.transaction(), conn.cursor() as cur:
                if upsert:
                    cur.execute(
                        sql.SQL("CREATE TEMP TABLE stage (LIKE {}) ON COMMIT DROP").format(table)
                    )
                    target = sql.Identifier("stage")
                else:
                    target = table
                with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(target, cols)) as copy:
                    for row in batch:
                        copy.write_row(row)
                if upsert:
                    cur.execute(
                        sql.SQL(
                            "INSERT INTO {} SELECT * FROM stage ON CONFLICT (id) DO UPDATE SET {}"
                        ).format(
                            table,
                            sql.SQL(", ").join(
                                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(n))
                                for n in names[1:]
                            ),
                        )
                    )

        batch: list[list] = []
        for line in source:
            message = orjson.loads(line)
            if message["type"] != "RECORD":
                continue
            record = message["record"]
            row = [record.get(n) for n in names]
            for i in json_cols:
                if row[i] is not None:
                    row[i] = orjson.dumps(row[i]).decode()
            batch.append(row)
            if len(batch) == 10_000:
                flush(batch)
                batch = []
        if batch:
            flush(batch)


# ---------------------------------------------------------------------------------------------
# Running and measuring


def measure(argv: list[str], stdin_path: Path, log: Path) -> dict:
    """Run argv with the file on stdin; wall seconds and this child's own peak RSS."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as on a user's machine: imports are cached
    with stdin_path.open("rb") as stdin, log.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "rc": proc.returncode,
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def reset_schema(url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def count_rows(url: str, schema: str) -> int:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, "deals"))
        ).fetchone()
        return int(row[0]) if row else 0


def ensure_competitor(name: str) -> Path:
    """A virtualenv under bench/.venvs/ with the competitor installed; its console script."""
    package, script = COMPETITORS[name]
    return comparison.ensure_venv(name, [package]) / "bin" / script


def loaders(
    url: str, compare: bool, baseline: Path | None = None, history: bool = False
) -> dict[str, tuple[list[str], dict]]:
    """name -> (argv taking the Singer file on stdin, config written to a file)."""
    bin_dir = Path(sys.executable).parent
    result = {
        "plain psycopg COPY": ([sys.executable, str(Path(__file__).resolve()), "plain-copy"], {}),
        "target-pipeboard-postgres": (
            [str(bin_dir / "target-pipeboard-postgres")],
            {"database_url": url},
        ),
        # The cost of the data-quality figures (on by default): the same target without them.
        "target-pipeboard-postgres, data_quality off": (
            [str(bin_dir / "target-pipeboard-postgres")],
            {"database_url": url, "data_quality": False},
        ),
    }
    if baseline is not None:
        # Another checkout's installation (e.g. the previous commit), side by side.
        result["target-pipeboard-postgres (baseline)"] = (
            [str(baseline / "target-pipeboard-postgres")],
            {"database_url": url},
        )
    if history:
        result["target-pipeboard-postgres (history mode)"] = (
            [str(bin_dir / "target-pipeboard-postgres")],
            {"database_url": url, "history_streams": [STREAM]},
        )
    if compare:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(url)
        base = {
            "host": params.get("host", "127.0.0.1"),
            "port": int(params.get("port", 5432)),
            "user": params.get("user", "postgres"),
            "password": params.get("password", ""),
            "database": params.get("dbname", "postgres"),
        }
        ml = str(ensure_competitor("meltanolabs"))
        # load_method upsert: the upsert pass must update rows, not append them again
        result["meltanolabs (defaults)"] = ([ml], {**base, "load_method": "upsert"})
        result["meltanolabs (use_copy, no validation)"] = (
            [ml],
            {**base, "load_method": "upsert", "use_copy": True, "validate_records": False},
        )
        pw = str(ensure_competitor("pipelinewise"))
        result["pipelinewise"] = (
            [pw],
            {
                **{k: v for k, v in base.items() if k != "database"},
                "dbname": base["database"],
                "password": base["password"] or "unused",  # required, even with trust auth
            },
        )
    return result


def run(
    rows_list: list[int],
    url: str,
    compare: bool,
    repeat: int,
    only: str | None = None,
    baseline: Path | None = None,
    history: bool = False,
) -> list[dict]:
    """Every loader on every size, `repeat` rounds (initial load, then upsert pass); medians.

    Rounds interleave the loaders, so a busy moment on a shared machine does not fall on one
    loader only, and every other round runs them in reverse order, so no loader always runs
    first (on a warm or cold cache).
    """
    OUT.mkdir(exist_ok=True)
    results = []
    everything = loaders(url, compare, baseline, history)
    chosen = {n: v for n, v in everything.items() if not only or only in n}
    for rows in rows_list:
        data = OUT / f"deals_{rows}.singer"
        if not data.exists():
            print(f"generating {data} ...", file=sys.stderr)
            generate(data, rows)
        samples: dict[tuple[str, str], list[dict]] = {}
        for round_number in range(repeat):
            order = list(chosen.items())
            if round_number % 2:
                order.reverse()
            for name, (argv, config) in order:
                # The process id too: another bench run on the same server uses its own schemas.
                slug = "".join(c if c.isalnum() else "_" for c in name.lower())[:40]
                schema = f"bench_{slug}_{os.getpid()}"
                config = {k: v for k, v in config.items() if v is not None}
                if config:
                    config["default_target_schema"] = schema
                config_path = OUT / f"config_{schema}.json"
                config_path.write_text(json.dumps(config))
                reset_schema(url, schema)
                for phase in ("initial", "upsert"):
                    if argv[-1] == "plain-copy":
                        full = [*argv, "--database-url", url, "--schema", schema]
                        full += ["--upsert"] if phase == "upsert" else []
                    else:
                        full = [*argv, "--config", str(config_path)]
                    m = measure(full, data, OUT / f"{schema}_{rows}_{phase}.log")
                    m["rows_in_table"] = count_rows(url, schema) if m["rc"] == 0 else 0
                    samples.setdefault((name, phase), []).append(m)
                reset_schema(url, schema)
        for (name, phase), runs in samples.items():
            runs.sort(key=lambda m: m["seconds"])
            mid = runs[len(runs) // 2]
            entry = {
                "loader": name,
                "rows": rows,
                "phase": phase,
                "runs": len(runs),
                "rc": max(m["rc"] for m in runs),
                "seconds": round(mid["seconds"], 2),
                "cpu_seconds": round(sorted(m["cpu_seconds"] for m in runs)[len(runs) // 2], 2),
                "rows_per_s": round(rows / mid["seconds"]),
                "peak_rss_mb": round(max(m["peak_rss_mb"] for m in runs)),
                "rows_in_table": mid["rows_in_table"],
            }
            print(json.dumps(entry), flush=True)
            results.append(entry)
    return results


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        cpu = model
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    system = f"{platform.system()} {platform.release()}"
    python = platform.python_version()
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GB RAM, {system}, Python {python}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    plain = sub.add_parser("plain-copy", help="(internal) the plain loader, reading stdin")
    plain.add_argument("--database-url", required=True)
    plain.add_argument("--schema", required=True)
    plain.add_argument("--upsert", action="store_true")
    gen = sub.add_parser("generate", help="write the Singer file only")
    gen.add_argument("--rows", type=int, default=100_000)
    gen.add_argument("path", type=Path)
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--compare", action="store_true", help="also the existing Postgres targets")
    parser.add_argument("--only", help="run only the loaders whose name contains this")
    parser.add_argument("--repeat", type=int, default=3, help="runs per loader (median reported)")
    parser.add_argument(
        "--baseline-bin",
        type=Path,
        help="also the target installed in this bin directory (e.g. the previous commit's)",
    )
    parser.add_argument(
        "--history", action="store_true", help="also the target with history_streams [deals]"
    )
    args = parser.parse_args()
    if args.command == "plain-copy":
        plain_copy(Path("/dev/stdin"), args.database_url, args.schema, args.upsert)
        return
    if args.command == "generate":
        generate(args.path, args.rows)
        return
    print(machine(), file=sys.stderr)
    results = run(
        args.rows or [100_000],
        args.database_url,
        args.compare,
        args.repeat,
        args.only,
        args.baseline_bin,
        args.history,
    )
    (OUT / "target_results.json").write_text(
        json.dumps({"machine": machine(), "results": results}, indent=1)
    )


if __name__ == "__main__":
    main()
