"""Whether ``meltano install`` is needed: the plugins' venvs exist and match their definitions.

    python scripts/plugins_installed.py            exit 0 when installed and current, 1 otherwise
    python scripts/plugins_installed.py --record   remember the current definitions as installed

The fingerprint covers meltano.yml, the plugins' pyproject.toml files and the constraints file:
editable installs pick up code changes by themselves, but not new dependencies.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INPUTS = (
    "meltano.yml",
    "tap-pipedrive/pyproject.toml",
    "target-pipeboard-postgres/pyproject.toml",
    "requirements/constraints.txt",
)


def fingerprint(root: Path) -> str:
    """A digest of every file whose change calls for a new ``meltano install``."""
    digest = hashlib.sha256()
    for name in INPUTS:
        path = root / name
        digest.update(name.encode())
        digest.update(path.read_bytes() if path.exists() else b"<missing>")
    return digest.hexdigest()


def executables(root: Path) -> list[Path]:
    """The console script of every plugin that has its own pip_url, inside its Meltano venv."""
    project = yaml.safe_load((root / "meltano.yml").read_text())
    found: list[Path] = []
    for kind, plugins in project.get("plugins", {}).items():
        for plugin in plugins:
            if "pip_url" not in plugin:
                continue  # inherits its parent's venv
            name = plugin["name"]
            executable = plugin.get("executable", name)
            found.append(root / ".meltano" / kind / name / "venv" / "bin" / executable)
    return found


def stamp_path(root: Path) -> Path:
    """Where the fingerprint of the last successful install is kept."""
    return root / ".meltano" / ".pipeboard-plugins-installed"


def is_current(root: Path) -> bool:
    """Every plugin is installed and nothing that defines them changed since."""
    stamp = stamp_path(root)
    return (
        all(path.exists() for path in executables(root))
        and stamp.exists()
        and stamp.read_text().strip() == fingerprint(root)
    )


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Is `meltano install` needed?")
    parser.add_argument("--record", action="store_true", help="record the current fingerprint")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT)
    args = parser.parse_args(argv)
    root: Path = args.root
    if args.record:
        stamp_path(root).parent.mkdir(parents=True, exist_ok=True)
        stamp_path(root).write_text(fingerprint(root) + "\n")
        return 0
    current = is_current(root)
    if not args.quiet:
        print("plugins installed and current" if current else "meltano install needed")
    return 0 if current else 1


if __name__ == "__main__":
    sys.exit(main())
