"""The reliability figures: what the suite injected and tried, and what was lost (must be 0).

Tests add to one session-wide ``Figures`` object; at the end of the session it is written as
JSON (to ``$PIPEBOARD_RELIABILITY_FIGURES`` or the session's temporary directory) and printed as
the Markdown table that docs/reliability.md records.

The figures tables of docs/reliability.md and of the README's Reliability section are made
from such a JSON file, never typed: they sit between ``<!-- rel_figures:NAME -->`` and
``<!-- /rel_figures -->`` markers, and ``MEASURED`` (beside this file) is the JSON of the run
they record. ``test_rel_figures.py`` fails when a table differs from what ``MEASURED`` gives.

    python tests/reliability/rel_figures.py FILE           # print both tables of a saved run
    python tests/reliability/rel_figures.py --write FILE   # record that run in the docs
    python tests/reliability/rel_figures.py --check        # the docs match MEASURED?
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MEASURED = Path(__file__).with_name("rel_figures_measured.json")
DOCUMENTS = {"docs": ROOT / "docs" / "reliability.md", "readme": ROOT / "README.md"}

ROWS = [
    ("kill_points_survived", "Target SIGKILL points survived, each mid-load (rerun to completion)"),
    ("tap_kill_points_survived", "Tap SIGKILL points survived (rerun to completion)"),
    ("bad_inputs_tried", "Bad inputs sent to the target"),
    ("fuzz_examples", "Property-based (hypothesis) round-trip examples"),
    ("rows_checked", "Rows compared against the expected data"),
    ("rows_lost", "**Rows lost**"),
    ("rows_duplicated", "**Rows duplicated**"),
    ("secret_scans_bytes", "Bytes of output scanned for secrets"),
    ("secrets_leaked", "**Secrets found in output**"),
]

# Observed values (one per test): the label, and what the values are out of.
OBSERVED = {
    "kill_committed_records": (
        "Target SIGKILL points: records committed when the kill landed (of 1,600)"
    ),
}

# Fault kind -> (family, short name for the README, description for docs/reliability.md).
FAULTS: dict[str, tuple[str, str, str]] = {
    "http_500": ("HTTP", "5xx", "HTTP 500"),
    "http_502": ("HTTP", "5xx", "HTTP 502"),
    "http_503": ("HTTP", "5xx", "HTTP 503"),
    "slow": ("HTTP", "slow", "slow answers (1 past the request timeout)"),
    "reset": ("HTTP", "reset", "connection closed without an answer"),
    "truncated_json": ("HTTP", "truncated/malformed JSON", "truncated JSON body"),
    "malformed_json": ("HTTP", "truncated/malformed JSON", "malformed JSON body"),
    "null_body": ("HTTP", "null body", "200 with a `null` body"),
    "burst_429": ("HTTP", "429 burst", "429 burst"),
    "budget_exhausted": (
        "HTTP",
        "budget spent",
        "daily budget spent (before the run, and 429 'budget' answers mid-stream)",
    ),
    "403_after_hammering": (
        "HTTP",
        "403 block page",
        "403 block pages drawn by another client hammering the account with the same token",
    ),
    "tap_sigkill": ("tap and source", "tap SIGKILL", "tap SIGKILL mid-stream"),
    "records_changed_mid_run": (
        "tap and source",
        "records changed while paging",
        "records changed while a run paged through them",
    ),
    "concurrent_syncs": (
        "tap and source",
        "concurrent syncs",
        "syncs of one account running at once (first load, incremental; 2 each)",
    ),
    "pg_connection_terminated": (
        "database",
        "connection terminated",
        "Postgres connection terminated (`pg_terminate_backend`)",
    ),
    "pg_server_restarted": (
        "database",
        "server restarted",
        "Postgres server restarted under a load",
    ),
    "pg_permission_denied": (
        "database",
        "permission denied",
        "permission denied on the table mid-run (SQLSTATE 42501)",
    ),
    "pg_disk_full": ("database", "disk full", "disk full mid-load (SQLSTATE 53100)"),
    "pg_slow_commit_then_failure": (
        "database",
        "slow commit then failing batch",
        "a batch queued behind a slow commit, then failing",
    ),
}


@dataclass
class Figures:
    counts: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    observed: dict[str, list[int]] = field(default_factory=dict)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def fault(self, kind: str, n: int = 1) -> None:
        self.faults[kind] += n

    def observe(self, name: str, value: int) -> None:
        self.observed.setdefault(name, []).append(value)

    def as_json(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "faults_injected": dict(self.faults),
            "observed": {k: sorted(v) for k, v in self.observed.items()},
        }


def _spread(values: list[int]) -> str:
    if not values:
        return "none"
    return f"{min(values):,} to {max(values):,} ({len(set(values))} distinct)"


def _fault(kind: str) -> tuple[str, str, str]:
    return FAULTS.get(kind, ("other", kind, f"`{kind}`"))


def markdown_table(data: dict[str, Any]) -> str:
    """The full table (docs/reliability.md): every figure and each fault kind."""
    counts = data.get("counts", {})
    lines = ["| figure | measured |", "|---|---:|"]
    for key, label in ROWS:
        value = f"{counts.get(key, 0):,}"
        lines.append(f"| {label} | {f'**{value}**' if label.startswith('**') else value} |")
    for key, label in OBSERVED.items():
        lines.append(f"| {label} | {_spread(data.get('observed', {}).get(key, []))} |")
    faults = data.get("faults_injected", {})
    for kind in sorted(faults, key=lambda k: (_fault(k)[0], k)):
        family, _, label = _fault(kind)
        lines.append(f"| Faults injected ({family}): {label} | {faults[kind]:,} |")
    return "\n".join(lines)


def readme_table(data: dict[str, Any]) -> str:
    """The compact table (README.md): fault counts per family, each kind's count listed."""
    counts = data.get("counts", {})
    observed = data.get("observed", {}).get("kill_committed_records", [])
    kills = f"{counts.get('kill_points_survived', 0):,}"
    if observed:
        kills += f" (after {min(observed):,} to {max(observed):,} of 1,600 records)"
    lines = [
        "| figure | measured |",
        "|---|---:|",
        f"| target SIGKILL points survived, each mid-load | {kills} |",
        f"| tap SIGKILL points survived | {counts.get('tap_kill_points_survived', 0):,} |",
    ]
    families: dict[str, Counter[str]] = {}
    for kind, n in data.get("faults_injected", {}).items():
        family, short, _ = _fault(kind)
        families.setdefault(family, Counter())[short] += n
    for family in sorted(families):
        kinds = families[family]
        listed = ", ".join(f"{short} {n:,}" for short, n in sorted(kinds.items()))
        total = sum(kinds.values())
        lines.append(f"| {family} faults injected ({listed}) | {total:,} |")
    megabytes = counts.get("secret_scans_bytes", 0) / 1e6
    lines += [
        f"| bad inputs sent to the target | {counts.get('bad_inputs_tried', 0):,} |",
        f"| property-based round-trip examples | {counts.get('fuzz_examples', 0):,} |",
        f"| rows compared against the truth | {counts.get('rows_checked', 0):,} |",
        f"| **rows lost / rows duplicated** | **{counts.get('rows_lost', 0):,} / "
        f"{counts.get('rows_duplicated', 0):,}** |",
        f"| **secrets found in {megabytes:.1f} MB of debug-level output** | "
        f"**{counts.get('secrets_leaked', 0):,}** |",
    ]
    return "\n".join(lines)


TABLES = {"docs": markdown_table, "readme": readme_table}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- rel_figures:{name} -->\n)(.*?)\n?<!-- /rel_figures -->", flags=re.DOTALL
    )


def recorded_table(name: str, text: str) -> str | None:
    """The table a document records between its ``name`` markers (None without markers)."""
    match = _block(name).search(text)
    return match.group(2) if match else None


def with_table(name: str, text: str, data: dict[str, Any]) -> str:
    pattern = _block(name)
    if not pattern.search(text):
        raise ValueError(f"no <!-- rel_figures:{name} --> markers")
    table = TABLES[name](data)
    return pattern.sub(lambda m: f"{m.group(1)}{table}\n<!-- /rel_figures -->", text, count=1)


def mismatches(data: dict[str, Any]) -> list[str]:
    """Documents whose figures tables are not what ``data`` gives."""
    wrong = []
    for name, path in DOCUMENTS.items():
        if recorded_table(name, path.read_text()) != TABLES[name](data):
            wrong.append(f"{path.relative_to(ROOT)} ({name} table)")
    return wrong


def save(figures: Figures, path: Path) -> None:
    path.write_text(json.dumps(figures.as_json(), indent=2, sort_keys=True) + "\n")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check"]:
        source = Path(argv[1]) if len(argv) > 1 else MEASURED
        wrong = mismatches(json.loads(source.read_text()))
        for item in wrong:
            print(f"{item} differs from the figures of {source}", file=sys.stderr)
        return 1 if wrong else 0
    if argv[:1] == ["--write"] and len(argv) == 2:
        source = Path(argv[1])
        data = json.loads(source.read_text())
        for name, path in DOCUMENTS.items():
            path.write_text(with_table(name, path.read_text(), data))
        if source.resolve() != MEASURED:
            shutil.copyfile(source, MEASURED)
        return 0
    if len(argv) == 1:
        data = json.loads(Path(argv[0]).read_text())
        print(markdown_table(data), readme_table(data), sep="\n\n")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
