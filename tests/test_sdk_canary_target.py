"""`make sdk-canary`: exists, runs the seam tests and the SDK suites, and is not in `make test`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _dry_run(target: str) -> str:
    result = subprocess.run(
        ["make", "--dry-run", "--always-make", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def _rules() -> dict[str, str]:
    """Makefile target -> its line of prerequisites."""
    text = (ROOT / "Makefile").read_text()
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"^([A-Za-z][\w-]*):(?!=)(.*)$", text, flags=re.MULTILINE)
    }


def test_the_target_exists_and_is_phony() -> None:
    rules = _rules()
    assert "sdk-canary" in rules
    phony = next(
        line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith(".PHONY")
    )
    assert "sdk-canary" in phony.split()


def test_it_installs_the_newest_sdk_apart_and_runs_the_seam_tests_and_sdk_suites() -> None:
    commands = _dry_run("sdk-canary")
    assert ".venv-sdk-canary/bin/uv pip install" in commands
    assert "--override .venv-sdk-canary/override.txt" in commands
    assert "echo singer-sdk > .venv-sdk-canary/override.txt" in commands
    for test in (
        "tap-pipedrive/tests/test_tap_sdk_seam.py",
        "tap-pipedrive/tests/test_tap_standard.py",
        "target-pipeboard-postgres/tests/test_target_sdk_suite.py",
        "tests/test_sdk_seams.py",
    ):
        assert test in commands
        assert (ROOT / test).is_file()
    target_seam = ROOT / "target-pipeboard-postgres/tests/test_target_sdk_seam.py"
    assert (str(target_seam.relative_to(ROOT)) in commands) == target_seam.is_file()
    pytest_line = next(line for line in commands.splitlines() if "-m pytest" in line)
    assert ".venv-sdk-canary/bin/python -m pytest" in pytest_line


def test_it_is_not_part_of_make_test() -> None:
    rules = _rules()
    assert "sdk-canary" not in rules["test"]
    commands = _dry_run("test")
    assert "sdk-canary" not in commands
    assert ".venv-sdk-canary" not in commands
