"""Keep the settings of both plugins in meltano.yml in step with their config schemas.

    python scripts/meltano_settings.py           rewrite the settings blocks from `--about`
    python scripts/meltano_settings.py --check   exit 1 when meltano.yml has drifted

Each plugin's ``--about --format=json`` is the source: every setting with its kind, whether it is
sensitive, its description and its default. The rest of meltano.yml (comments included) is kept.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLUGINS = {("extractors", "tap-pipedrive"), ("loaders", "target-pipeboard-postgres")}


def about(executable: str) -> dict[str, Any]:
    """The plugin's ``--about --format=json``."""
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(  # noqa: S603 - the plugin's own console script, fixed arguments
        [str(bin_dir / executable), "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    info: dict[str, Any] = json.loads(result.stdout)
    return info


# Number settings are declared `kind: string`, not `kind: decimal`: Meltano 4.4 casts a
# decimal setting whose value is a string (every environment variable, .env entry and
# `meltano config set`) to decimal.Decimal, which it then cannot write to the plugin's JSON
# config file: `meltano run`/`invoke` stop with "TypeError: Object of type Decimal is not JSON
# serializable". As `kind: string` the value reaches the plugin as written ("0.5"; a number
# from meltano.yml stays a number), and both plugins convert numeric strings before they
# validate their config, failing on anything else with an error that names the setting.
NUMBER_NOTE = (
    "A number (a `string` setting, so that it can be set from an environment variable; the "
    "plugin converts it)."
)


def is_number(schema: dict[str, Any]) -> bool:
    """Whether a JSON schema property holds a (fractional) number."""
    types = schema.get("type", "string")
    types = {types} if isinstance(types, str) else set(types)
    return "number" in types and not types & {"boolean", "integer", "string"}


def kind_of(schema: dict[str, Any]) -> str:
    """The Meltano setting kind for a JSON schema property."""
    types = schema.get("type", "string")
    types = {types} if isinstance(types, str) else set(types)
    if "boolean" in types:
        return "boolean"
    if "integer" in types:
        return "integer"
    if "number" in types:
        return "string"  # not "decimal": see NUMBER_NOTE
    if "object" in types:
        return "object"
    if "array" in types:
        return "array"
    if schema.get("enum"):
        return "options"
    if schema.get("format") == "date-time":
        return "date_iso8601"
    return "string"


def setting(name: str, schema: dict[str, Any]) -> CommentedMap:
    """The meltano.yml setting for one property of a config schema."""
    entry = CommentedMap(name=name, kind=kind_of(schema))
    if schema.get("secret"):
        entry["sensitive"] = True
    if schema.get("enum"):
        values = [value for value in schema["enum"] if value is not None]
        entry["options"] = CommentedSeq(CommentedMap(label=v, value=v) for v in values)
    if "default" in schema and schema["default"] is not None:
        entry["value"] = schema["default"]
    description = " ".join(str(schema.get("description") or "").split())
    if is_number(schema):
        description = f"{description} {NUMBER_NOTE}".strip()
    if description:
        entry["description"] = description
    return entry


def settings_for(info: dict[str, Any]) -> CommentedSeq:
    """Every setting of a plugin, in the order of its config schema."""
    properties: dict[str, Any] = info["settings"]["properties"]
    return CommentedSeq(setting(name, schema) for name, schema in properties.items())


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Sync meltano.yml settings with the plugins.")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--project", type=Path, default=PROJECT_ROOT / "meltano.yml")
    args = parser.parse_args(argv)

    yaml = YAML()
    yaml.width = 100
    yaml.indent(mapping=2, sequence=2, offset=0)
    path: Path = args.project
    document = yaml.load(path.read_text())
    drifted: list[str] = []
    for kind, plugins in document["plugins"].items():
        for plugin in plugins:
            if (kind, plugin["name"]) not in PLUGINS:
                continue
            info = about(plugin.get("executable", plugin["name"]))
            fresh = settings_for(info)
            if json.dumps(plugin.get("settings"), default=str) != json.dumps(fresh, default=str):
                drifted.append(plugin["name"])
                plugin["settings"] = fresh
            capabilities = CommentedSeq(sorted(info["capabilities"]))
            if list(plugin.get("capabilities") or []) != list(capabilities):
                drifted.append(f"{plugin['name']} capabilities")
                plugin["capabilities"] = capabilities
    if args.check:
        if drifted:
            print(f"meltano.yml drifted from the plugins: {', '.join(drifted)}")
            print("run: python scripts/meltano_settings.py")
            return 1
        return 0
    with path.open("w") as handle:
        yaml.dump(document, handle)
    print(f"updated {', '.join(drifted)}" if drifted else "meltano.yml already current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
