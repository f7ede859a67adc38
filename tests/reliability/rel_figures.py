"""The reliability figures: what the suite injected and tried, and what was lost (must be 0).

Tests add to one session-wide ``Figures`` object; at the end of the session it is written as
JSON (to ``$PIPEBOARD_RELIABILITY_FIGURES`` or the session's temporary directory) and printed as
the Markdown table that docs/reliability.md records. ``python tests/reliability/rel_figures.py
FILE`` prints the table of a saved JSON file.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROWS = [
    ("kill_points_survived", "Target SIGKILL points survived (rerun to completion each time)"),
    ("tap_kill_points_survived", "Tap SIGKILL points survived (rerun to completion)"),
    ("bad_inputs_tried", "Bad inputs sent to the target"),
    ("fuzz_examples", "Property-based (hypothesis) round-trip examples"),
    ("rows_checked", "Rows compared against the expected data"),
    ("rows_lost", "Rows lost"),
    ("rows_duplicated", "Rows duplicated"),
    ("secret_scans_bytes", "Bytes of output scanned for secrets"),
    ("secrets_leaked", "Secrets found in output"),
]


@dataclass
class Figures:
    counts: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def fault(self, kind: str, n: int = 1) -> None:
        self.faults[kind] += n

    def as_json(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "faults_injected": dict(self.faults)}


def markdown_table(data: dict[str, Any]) -> str:
    counts = data.get("counts", {})
    lines = ["| figure | measured |", "|---|---:|"]
    for key, label in ROWS:
        lines.append(f"| {label} | {counts.get(key, 0):,} |")
    for kind, n in sorted(data.get("faults_injected", {}).items()):
        lines.append(f"| Faults injected: `{kind}` | {n:,} |")
    return "\n".join(lines)


def save(figures: Figures, path: Path) -> None:
    path.write_text(json.dumps(figures.as_json(), indent=2, sort_keys=True))


if __name__ == "__main__":
    print(markdown_table(json.loads(Path(sys.argv[1]).read_text())))
