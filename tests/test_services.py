"""The shared service fixtures reach real servers."""

import psycopg
import redis


def test_postgres_schema_is_usable(postgres_url: str, pg_schema: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute(f'create table "{pg_schema}".probe (id int)')
        conn.execute(f'insert into "{pg_schema}".probe values (1)')
        assert conn.execute(f'select count(*) from "{pg_schema}".probe').fetchone() == (1,)


def test_redis_round_trip(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(f"{redis_prefix}:k", "v", ex=10)
    assert client.get(f"{redis_prefix}:k") == b"v"
