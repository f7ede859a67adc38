"""The embedded development Postgres under .meltano/postgres: what landed, psql, stop.

The dev environment loads into an embedded PostgreSQL (the ``pgserver`` wheel, database_url
``embedded://DIR``). This helper reads it without a psql install:

    python scripts/embedded_pg.py report [--schema pipedrive]   tables and row counts
    python scripts/embedded_pg.py total  [--schema pipedrive]   one number: all rows in the schema
    python scripts/embedded_pg.py psql                          an interactive psql session
    python scripts/embedded_pg.py stop                          stop the server
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

# pgserver asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR that only warns.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / ".meltano" / "postgres"
DEFAULT_DATABASE = "postgres"


def _bin_dir() -> Path:
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def server_uri(data_dir: Path, database: str) -> str:
    """Start the embedded server if it is not running (and leave it running); return its URI."""
    if not (data_dir / "PG_VERSION").exists():
        raise SystemExit(f"no embedded Postgres in {data_dir}: run 'make demo' first")
    from pgserver.postgres_server import get_server

    # cleanup_mode=None keeps the server up after this process ends, so psql can connect.
    server = get_server(data_dir, cleanup_mode=None)
    return str(server.get_uri(database))


def table_counts(uri: str, schema: str) -> list[tuple[str, int]]:
    """Every table of ``schema`` with its row count, by name."""
    with psycopg.connect(uri) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "select table_name from information_schema.tables"
                " where table_schema = %s and table_type = 'BASE TABLE'"
                " and table_name not like '\\_%%'"  # the target's own bookkeeping tables
                " order by table_name",
                (schema,),
            )
        ]
        counts: list[tuple[str, int]] = []
        for name in names:
            query = sql.SQL("select count(*) from {}.{}").format(
                sql.Identifier(schema), sql.Identifier(name)
            )
            row = conn.execute(query).fetchone()
            counts.append((name, int(row[0]) if row else 0))
        return counts


def _print_report(uri: str, schema: str, data_dir: Path) -> None:
    counts = table_counts(uri, schema)
    if not counts:
        print(f"No tables in schema {schema!r} yet.")
    else:
        width = max(len(name) for name, _ in counts)
        print(f"\nWhat landed in schema {schema!r}:")
        for name, count in counts:
            print(f"  {name:<{width}}  {count:>8,}")
        print(f"  {'total':<{width}}  {sum(c for _, c in counts):>8,}")
    script = os.path.relpath(__file__, Path.cwd())
    python = os.path.relpath(sys.executable, Path.cwd())
    print(
        "\nThe embedded Postgres is still running; connect with psql:\n"
        f"  {python} {script} psql\n"
        f'  {_bin_dir() / "psql"} "{uri}"   (any psql client works with this URI)\n'
        f"Stop it with: {python} {script} stop   (data stays in {data_dir})"
    )


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=["report", "total", "psql", "stop"])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--schema", default="pipedrive")
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    args = parser.parse_args(argv)
    data_dir: Path = args.data_dir.resolve()

    if args.command == "stop":
        if (data_dir / "postmaster.pid").exists():
            from pgserver.postgres_server import get_server

            # pgserver runs the server as its own user when started by root: let it stop it.
            get_server(data_dir, cleanup_mode="stop").cleanup()
            print(f"Stopped the embedded Postgres in {data_dir}.")
        else:
            print(f"The embedded Postgres in {data_dir} is not running.")
        return 0

    uri = server_uri(data_dir, args.database)
    if args.command == "total":
        print(sum(count for _, count in table_counts(uri, args.schema)))
    elif args.command == "report":
        _print_report(uri, args.schema, data_dir)
    else:
        os.execv(str(_bin_dir() / "psql"), ["psql", uri])  # noqa: S606 - the bundled psql
    return 0


if __name__ == "__main__":
    sys.exit(main())
