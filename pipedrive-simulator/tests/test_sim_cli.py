"""The console script serves until killed and announces itself on its first line."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

SCRIPT = Path(sys.executable).with_name("pipedrive-simulator")


def test_cli_serves_and_prints_url_and_token():
    with subprocess.Popen(
        [
            str(SCRIPT),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--seed",
            "3",
            "--deals",
            "120",
            "--plan",
            "essential",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        _serve_and_check(proc)


def _serve_and_check(proc):
    try:
        line = proc.stdout.readline()
        match = re.fullmatch(r"serving (http://127\.0\.0\.1:\d+) token=(\S+)\n", line)
        assert match, line
        base, token = match.groups()
        resp = requests.get(
            base + "/api/v2/deals",
            params={"limit": 500},
            headers={"x-api-token": token},
            timeout=10,
        )
        assert resp.status_code == 200
        assert resp.headers["x-ratelimit-limit"] == "20"
        deals = resp.json()["data"]
        assert 100 <= len(deals) <= 120
        stats = requests.get(base + "/_simulator/stats", timeout=10).json()
        assert stats["total"]["tokens"] == 10
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_cli_rejects_a_bad_plan():
    result = subprocess.run(
        [str(SCRIPT), "--plan", "gold"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert "gold" in result.stderr


def test_cli_same_seed_same_account():
    def first_page(seed):
        with subprocess.Popen(
            [str(SCRIPT), "--seed", str(seed), "--deals", "50"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ},
        ) as proc:
            try:
                base, token = re.fullmatch(
                    r"serving (\S+) token=(\S+)\n", proc.stdout.readline()
                ).groups()
                return requests.get(
                    base + "/api/v2/deals", headers={"x-api-token": token}, timeout=10
                ).json()["data"]
            finally:
                proc.terminate()
                proc.wait(timeout=10)

    started = time.monotonic()
    assert first_page(9) == first_page(9)
    assert time.monotonic() - started < 20
