"""Write the settings table of README.md from ``tap-pipedrive --about --format=markdown``.

Usage: python scripts/readme_settings.py [--check]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def about_settings_table() -> str:
    """The ``## Settings`` section the SDK prints, without its heading."""
    tap = Path(sys.executable).with_name("tap-pipedrive")
    about = subprocess.run(  # noqa: S603 - our own console script
        [str(tap), "--about", "--format=markdown"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"^## Settings\n(.*?)(?=^## |\Z)", about, flags=re.S | re.M)
    if match is None:
        msg = "--about output has no '## Settings' section"
        raise SystemExit(msg)
    return match.group(1).strip()


def render(readme: str) -> str:
    table = about_settings_table()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), flags=re.S)
    return pattern.sub(f"{START}\n{table}\n{END}", readme)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if README.md is stale")
    args = parser.parse_args()
    current = README.read_text()
    wanted = render(current)
    if args.check:
        if wanted != current:
            print("README.md settings table is stale: run scripts/readme_settings.py")
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
