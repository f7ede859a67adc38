"""The database fails under a running load: connection killed, server restarted, rights lost.

Each test starts the target on the large Singer input, waits until it has committed a few
batches (it has emitted state), breaks the database underneath it, and then checks: a clear
failure naming the problem (or a transparent recovery), state never ahead of the committed
rows, and a rerun from the emitted state that converges to exactly the input's data.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from psycopg import sql
from rel_figures import Figures
from rel_load_input import (
    STREAM,
    assert_complete,
    assert_state_not_ahead,
    assert_whole_batches,
    records,
    resume_input,
    singer_lines,
    state_position,
)
from rel_support import (
    TARGET,
    PluginRun,
    StreamedProcess,
    bookmark_state,
    plugin_command,
    record_msg,
    run_target,
    schema_msg,
    write_config,
)
from rel_tls_server import Role, TlsPostgres

BATCH_ROWS = 50


# A record position where a batch (BATCH_ROWS) and a STATE (every STATE_EVERY) both end.
PAUSE_AT = 200


def load_and_break(
    config: dict[str, Any], directory: Path, fault: Callable[[int], None], when: str
) -> PluginRun:
    """Run the input and call ``fault(target pid)`` part way through.

    ``between-batches``: load up to PAUSE_AT, wait until it is committed (the target holds an
    open connection and nothing in flight), strike, send the rest: the next batch meets it.
    ``mid-load``: send everything at once and strike as soon as two states are out, while
    batches are being read, handed over and committed.
    """
    lines = singer_lines()
    split = lines.index(bookmark_state(STREAM, PAUSE_AT)) + 1 if when == "between-batches" else 0
    cfg = write_config(directory, "target-config.json", config)
    run = StreamedProcess.start([*plugin_command(TARGET), "--config", str(cfg)])
    assert run.proc.stdin is not None
    stdin = run.proc.stdin

    def feed(part: list[bytes]) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            stdin.write(b"".join(part))
            stdin.close()

    if split:
        stdin.write(b"".join(lines[:split]))
        stdin.flush()
        ready = lambda: any(state_position(s) >= PAUSE_AT for s in _states(run))  # noqa: E731
    else:
        threading.Thread(target=feed, args=(lines,), daemon=True).start()
        ready = lambda: len(_states(run)) >= 2  # noqa: E731
    deadline = time.monotonic() + 60
    while not ready():
        assert run.proc.poll() is None, b"".join(run.stderr_chunks).decode()[-3000:]
        assert time.monotonic() < deadline, "no batch was ever committed"
        time.sleep(0.005)
    assert run.proc.poll() is None, "the load finished before the fault"
    fault(run.proc.pid)
    writer = threading.Thread(target=feed, args=(lines[split:],), daemon=True)
    if split:
        writer.start()
    result = run.finish(timeout=90)
    if split:
        writer.join(timeout=10)
    return result


WHEN = pytest.mark.parametrize("when", ["between-batches", "mid-load"])


def _states(run: StreamedProcess) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in list(run.stdout_lines) if raw.strip()]


def last_position(run: PluginRun) -> int:
    positions = [state_position(s) for s in run.states]
    assert positions == sorted(positions), f"state went backwards: {positions}"
    return positions[-1] if positions else 0


def converge(
    run: PluginRun,
    config: dict[str, Any],
    url: str,
    schema: str,
    directory: Path,
    figures: Figures,
    *,
    error_words: tuple[str, ...],
) -> None:
    position = last_position(run)
    assert_state_not_ahead(url, schema, position, "after the fault")
    if run.returncode != 0:
        err = run.err_text.lower()
        assert any(w in err for w in error_words), run.err_text[-3000:]
        rerun = run_target(config, resume_input(position), directory)
        assert rerun.returncode == 0, rerun.err_text[-3000:]
    assert_complete(url, schema, figures)


def _backends_of(pid: int) -> list[int]:
    """Local TCP ports of a process's connections (to find its Postgres backends)."""
    with contextlib.suppress(psutil.Error):
        return [c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp")]
    return []


@WHEN
def test_connection_dropped_mid_batch_then_rerun_converges(
    when: str,
    target_config: Callable[..., dict[str, Any]],
    postgres_url: str,
    pg_schema: str,
    tmp_path: Path,
    figures: Figures,
) -> None:
    config = target_config(batch_size_rows=BATCH_ROWS)
    terminated: list[int] = []

    def terminate_backend(target_pid: int) -> None:
        ports = _backends_of(target_pid)
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            # The target's own sessions only: by its TCP client ports; over a Unix socket (the
            # embedded server, used by this test session alone) by its application name.
            rows = conn.execute(
                "select pid from pg_stat_activity where pid <> pg_backend_pid() "
                "and application_name = 'target-pipeboard-postgres' "
                "and (client_port = any(%s) or client_port = -1)",
                (ports,),
            ).fetchall()
            for (pid,) in rows:
                conn.execute("select pg_terminate_backend(%s)", (pid,))
                terminated.append(pid)

    run = load_and_break(config, tmp_path, terminate_backend, when)
    assert terminated, "found no backend of the target to terminate"
    figures.fault("pg_connection_terminated", len(terminated))
    converge(
        run,
        config,
        postgres_url,
        pg_schema,
        tmp_path,
        figures,
        error_words=("terminat", "connection", "closed", "server"),
    )


@pytest.fixture
def tls_role(tls_postgres: TlsPostgres) -> Iterator[Role]:
    r = Role(tls_postgres, create_on_db=True)
    yield r
    r.drop()


@WHEN
def test_postgres_restarted_mid_batch_then_rerun_converges(
    when: str, tls_role: Role, tls_postgres: TlsPostgres, tmp_path: Path, figures: Figures
) -> None:
    config = {
        "database_url": tls_role.url(),
        "default_target_schema": tls_role.schema,
        "sslmode": "require",
        "batch_size_rows": BATCH_ROWS,
    }
    run = load_and_break(config, tmp_path, lambda _pid: tls_postgres.restart(), when)
    figures.fault("pg_server_restarted")
    assert tls_role.password not in run.err_text
    converge(
        run,
        config,
        tls_role.admin_url(),
        tls_role.schema,
        tmp_path,
        figures,
        error_words=("terminat", "shut", "connection", "closed", "server"),
    )


@WHEN
def test_permission_lost_mid_run_is_a_clear_error_and_rerun_converges(
    when: str, tls_role: Role, tls_postgres: TlsPostgres, tmp_path: Path, figures: Figures
) -> None:
    """An administrator takes the table away mid-run: Postgres answers 'permission denied'."""
    config = {
        "database_url": tls_role.url(),
        "default_target_schema": tls_role.schema,
        "sslmode": "require",
        "batch_size_rows": BATCH_ROWS,
    }
    table = sql.Identifier(tls_role.schema, STREAM)

    def take_table_away(_pid: int) -> None:
        with tls_postgres.admin_connect() as conn:
            conn.execute(sql.SQL("alter table {} owner to pgadmin").format(table))

    run = load_and_break(config, tmp_path, take_table_away, when)
    figures.fault("pg_permission_denied")
    assert run.returncode != 0, "the load went on without rights on its table"
    assert "permission denied" in run.err_text, run.err_text[-3000:]
    assert STREAM in run.err_text, "the error does not name the stream\n" + run.err_text[-3000:]
    # The administrator gives the table back; the rerun finishes the job.
    with tls_postgres.admin_connect() as conn:
        conn.execute(
            sql.SQL("alter table {} owner to {}").format(table, sql.Identifier(tls_role.name))
        )
    converge(
        run,
        config,
        tls_role.admin_url(),
        tls_role.schema,
        tmp_path,
        figures,
        error_words=("permission denied",),
    )


def test_state_waits_for_a_batch_queued_behind_a_slow_commit(
    target_config: Callable[..., dict[str, Any]],
    postgres_url: str,
    pg_schema: str,
    tmp_path: Path,
    figures: Figures,
) -> None:
    """A batch queues while the previous one is slow to commit, then fails: no state may cover it.

    The previous batch is held by a table lock from another session (a slow commit, as under
    load), while the next one (records 51-100, with STATE 60 among them) is read and handed
    over; then the lock goes and the held batch commits; the next one fails on a value that
    does not fit its column. STATE 60 must never be emitted: records 51-60 were never stored.
    """
    stream = "gate"
    props = {"id": {"type": "integer"}, "n": {"type": "integer"}}
    config = target_config(batch_size_rows=50)
    # Create the table first, so another session can lock it.
    created = run_target(
        config, schema_msg(stream, props) + record_msg(stream, {"id": 0, "n": 0}), tmp_path
    )
    assert created.returncode == 0, created.err_text[-3000:]

    data = schema_msg(stream, props)
    for i in range(1, 101):
        data += record_msg(stream, {"id": i, "n": 2**70 if i == 95 else i})
        if i in (40, 60, 100):
            data += bookmark_state(stream, i)
    with psycopg.connect(postgres_url) as blocker:
        blocker.execute(
            sql.SQL("lock table {} in access exclusive mode").format(
                sql.Identifier(pg_schema, stream)
            )
        )
        cfg = write_config(tmp_path, "gate-config.json", config)
        run = StreamedProcess.start([*plugin_command(TARGET), "--config", str(cfg)])
        assert run.proc.stdin is not None
        run.proc.stdin.write(data)
        run.proc.stdin.close()
        # Wait until the first batch's load is stuck behind the lock, then let the target
        # read and hand over the second batch.
        deadline = time.monotonic() + 30
        with psycopg.connect(postgres_url, autocommit=True) as watcher:
            while not watcher.execute(
                "select 1 from pg_locks where relation = %s::regclass and not granted",
                (f'"{pg_schema}"."{stream}"',),
            ).fetchone():
                assert time.monotonic() < deadline, "the first batch never reached the table"
                time.sleep(0.05)
        time.sleep(0.5)
        blocker.rollback()  # the held batch commits now
    result = run.finish(timeout=60)
    assert result.returncode != 0, "the batch with an out-of-range value was loaded"
    positions = [s["bookmarks"][stream]["position"] for s in result.states]
    with psycopg.connect(postgres_url) as conn:
        query = sql.SQL("select id from {}").format(sql.Identifier(pg_schema, stream))
        stored = {r[0] for r in conn.execute(query).fetchall()}
    assert set(range(1, 51)) <= stored
    for p in positions:
        assert set(range(1, p + 1)) <= stored, f"state {p} emitted, rows up to it not stored"
    figures.fault("pg_slow_commit_then_failure")


# Row writes the table still takes once the disk "fills". Not a multiple of the batch size:
# whichever batch meets the limit has written part of its rows when it fails.
DISK_ROOM = BATCH_ROWS + 21
DISK_FULL_MESSAGE = 'could not extend file "base/16384/2619": No space left on device'


@WHEN
def test_disk_full_mid_load_is_a_clear_error_and_rerun_converges(
    when: str,
    target_config: Callable[..., dict[str, Any]],
    postgres_url: str,
    pg_schema: str,
    tmp_path: Path,
    figures: Figures,
) -> None:
    """The database's disk fills under the load: Postgres answers SQLSTATE 53100 disk_full.

    A full filesystem needs root to mount, so a trigger on the loaded table acts it out: from
    the moment of the fault the table takes DISK_ROOM more row writes, then every insert and
    update fails as Postgres fails when it cannot extend a relation file (same SQLSTATE,
    message and hint). Removing the trigger is freeing the space.
    """
    config = target_config(batch_size_rows=BATCH_ROWS)
    room = sql.Identifier(pg_schema, "pb_disk_room")
    full = sql.Identifier(pg_schema, "pb_disk_full")
    table = sql.Identifier(pg_schema, STREAM)
    fill = sql.SQL(
        "create trigger pb_disk_full before insert or update on {} "
        "for each row execute function {}()"
    ).format(table, full)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(sql.SQL("create sequence {}").format(room))
        admin.execute(
            sql.SQL(
                "create function {full}() returns trigger language plpgsql as $$ begin "
                "if nextval({room}) > {limit} then raise exception {message} "
                "using errcode = 'disk_full', hint = 'Check free disk space.'; end if; "
                "return new; end $$"
            ).format(
                full=full,
                room=sql.Literal(f'"{pg_schema}"."pb_disk_room"'),
                limit=sql.Literal(DISK_ROOM),
                message=sql.Literal(DISK_FULL_MESSAGE),
            )
        )

        def fill_disk(_pid: int) -> None:
            admin.execute(fill)

        run = load_and_break(config, tmp_path, fill_disk, when)
        figures.fault("pg_disk_full")
        assert run.returncode != 0, "the load went on with a full disk\n" + run.err_text[-3000:]
        failure = [m for m in run.err_text.splitlines() if f"Loading stream '{STREAM}'" in m]
        assert failure, "the error does not name the stream\n" + run.err_text[-3000:]
        # The cause, not a lost connection: the connection is fine, the disk is not.
        assert "disk is full (SQLSTATE 53100)" in failure[-1], failure[-1]
        assert "No space left on device" in failure[-1], failure[-1]
        assert "lost the database connection" not in run.err_text, failure[-1]
        assert "Check free disk space" in run.err_text, run.err_text[-3000:]
        # Every write after the limit failed, so nothing after the failed batch was salvaged:
        # the table is the input after whole batches, the half-written one rolled back.
        committed = assert_whole_batches(postgres_url, pg_schema, BATCH_ROWS, "disk full")
        assert 0 < committed < len(records()), committed
        writes = admin.execute(sql.SQL("select last_value from {}").format(room)).fetchone()
        assert writes is not None
        assert writes[0] > DISK_ROOM, "the table never ran out of room"
        # Space is freed; the rerun finishes the job.
        admin.execute(sql.SQL("drop trigger pb_disk_full on {}").format(table))
    converge(
        run,
        config,
        postgres_url,
        pg_schema,
        tmp_path,
        figures,
        error_words=("disk is full",),
    )
