"""Each plugin touches the Singer SDK's private and final members in its ``sdk_seam.py`` only.

For both plugins this walks every class that subclasses an SDK class (after importing every
module, so classes made from tables of data are included) and every line of their source:

- a class member overriding an SDK member that is private (``_name``) or ``@final`` must be
  defined in the plugin's ``sdk_seam.py`` and named in its ``SDK_MEMBERS`` registry;
- outside ``sdk_seam.py``, no code reads, calls or assigns an SDK private member (``obj._tap``,
  ``getattr(obj, "_tap")``, ``Base._write_record_message(stream, ...)``) or imports from a
  private SDK module (``singer_sdk.helpers._state``);
- ``SDK_MEMBERS`` names exactly what the seam touches: nothing missing, nothing stale, each
  ``Owner.member`` a member the SDK's ``Owner`` has.

The behaviour each registered member is relied on for is pinned in the plugins' own seam tests
(``test_tap_sdk_seam.py``, ``test_target_sdk_seam.py``).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
import types
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
import singer_sdk

PLUGINS = ("tap_pipedrive", "target_pipeboard_postgres")
SDK_ROOT = Path(singer_sdk.__file__).parent
#: Set on every ABC by the interpreter, not an SDK member.
NOT_MEMBERS = frozenset({"_abc_impl"})


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__") and name not in NOT_MEMBERS


def _is_final(value: object) -> bool:
    candidates = (value, getattr(value, "fget", None), getattr(value, "__func__", None))
    return any(getattr(c, "__final__", False) for c in candidates if c is not None)


def _import_all(package: str) -> list[types.ModuleType]:
    root = importlib.import_module(package)
    modules = [root]
    for info in pkgutil.walk_packages(root.__path__, f"{package}."):
        modules.append(importlib.import_module(info.name))
    return modules


def _sdk_classes() -> dict[str, type]:
    """Every class defined in singer_sdk, by name (imported modules only: all the plugins use)."""
    found: dict[str, type] = {}
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] != "singer_sdk":
            continue
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__.split(".")[0] == "singer_sdk":
                found.setdefault(value.__qualname__, value)
    return found


def _sdk_private_names() -> frozenset[str]:
    """Names of private SDK members: methods, class attributes and ``self._x`` attributes."""
    names: set[str] = set()
    for path in SDK_ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _private(node.name):
                names.add(node.name)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in {"self", "cls"}
                and _private(node.attr)
            ):
                names.add(node.attr)
    return frozenset(names)


def _plugin_classes(package: str, sdk: dict[str, type]) -> set[type]:
    ours: set[type] = set()
    stack = list(sdk.values())
    seen: set[type] = set()
    while stack:
        cls = stack.pop()
        for sub in type.__subclasses__(cls):
            if sub not in seen:
                seen.add(sub)
                stack.append(sub)
                if sub.__module__.split(".")[0] == package:
                    ours.add(sub)
    return ours


def _sdk_overrides(cls: type) -> Iterator[tuple[str, str]]:
    """(member, SDK owner) for each member ``cls`` defines over a private or final SDK one."""
    sdk_mro = [k for k in cls.__mro__ if k.__module__.split(".")[0] == "singer_sdk"]
    for name in vars(cls):
        owners = [k for k in sdk_mro if name in vars(k)]
        if not owners or (name.startswith("__") and name.endswith("__")):
            continue
        if (_private(name)) or any(_is_final(vars(k)[name]) for k in owners):
            yield name, owners[-1].__qualname__


def _touches(module: types.ModuleType, private: frozenset[str], sdk_subclasses: set[type]):
    """(line, what) for each private SDK member or module the module's code reaches.

    ``self._x`` inside a class that is no SDK subclass is that class's own attribute."""
    tree = ast.parse(Path(str(module.__file__)).read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, own_class: bool) -> None:
        if isinstance(node, ast.ClassDef):
            cls = getattr(module, node.name, None)
            own_class = not (isinstance(cls, type) and cls in sdk_subclasses)
        parts = (node.module or "").split(".") if isinstance(node, ast.ImportFrom) else []
        if parts[0:1] == ["singer_sdk"] and any(_private(part) for part in parts):
            found.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "singer_sdk" and any(_private(p) for p in parts):
                    found.append((node.lineno, alias.name))
        if isinstance(node, ast.Attribute) and node.attr in private:
            is_self = isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}
            if not (is_self and own_class):
                found.append((node.lineno, node.attr))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "setattr", "hasattr", "delattr"}
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in private
        ):
            found.append((node.lineno, str(node.args[1].value)))
        for child in ast.iter_child_nodes(node):
            visit(child, own_class)

    visit(tree, own_class=True)
    return found


class Plugin(t.NamedTuple):
    package: str
    modules: list[types.ModuleType]
    seam: types.ModuleType
    registry: dict[str, str]
    classes: set[type]


@pytest.fixture(scope="module")
def sdk() -> dict[str, type]:
    for package in PLUGINS:
        _import_all(package)
    return _sdk_classes()


@pytest.fixture(scope="module")
def private_names() -> frozenset[str]:
    return _sdk_private_names()


@pytest.fixture(params=PLUGINS)
def plugin(request: pytest.FixtureRequest, sdk: dict[str, type]) -> Plugin:
    package = request.param
    modules = _import_all(package)
    seam = importlib.import_module(f"{package}.sdk_seam")
    registry = getattr(seam, "SDK_MEMBERS", None)
    assert isinstance(registry, dict), f"{package}/sdk_seam.py has no SDK_MEMBERS registry"
    return Plugin(package, modules, seam, registry, _plugin_classes(package, sdk))


def _registered_name(key: str) -> str:
    return key.rsplit(".", 1)[-1] if not key.startswith("singer_sdk.") else key


def test_private_and_final_sdk_members_are_overridden_in_the_seam_only(plugin: Plugin) -> None:
    assert plugin.classes, f"no SDK subclasses found in {plugin.package}"
    registered = {_registered_name(key) for key in plugin.registry}
    outside: list[str] = []
    unregistered: list[str] = []
    for cls in sorted(plugin.classes, key=lambda c: (c.__module__, c.__qualname__)):
        for name, owner in _sdk_overrides(cls):
            where = f"{cls.__module__}.{cls.__qualname__}.{name} (over {owner}.{name})"
            if cls.__module__ != plugin.seam.__name__:
                outside.append(where)
            elif name not in registered:
                unregistered.append(where)
    assert not outside, (
        "private or final SDK members overridden outside sdk_seam.py (move them there, with "
        "why, behind a public hook): " + ", ".join(outside)
    )
    assert not unregistered, "overrides missing from SDK_MEMBERS: " + ", ".join(unregistered)


def test_no_code_outside_the_seam_reaches_private_sdk_members(
    plugin: Plugin, private_names: frozenset[str]
) -> None:
    found: list[str] = []
    for module in plugin.modules:
        if module is plugin.seam:
            continue
        for line, what in _touches(module, private_names, plugin.classes):
            found.append(f"{module.__name__}:{line} {what}")
    assert not found, "private SDK members reached outside sdk_seam.py: " + ", ".join(found)


def test_the_registry_names_exactly_what_the_seam_touches(
    plugin: Plugin, sdk: dict[str, type], private_names: frozenset[str]
) -> None:
    touched = {what for _, what in _touches(plugin.seam, private_names, plugin.classes)}
    for cls in plugin.classes:
        if cls.__module__ == plugin.seam.__name__:
            touched |= {name for name, _ in _sdk_overrides(cls)}
    registered = {_registered_name(key) for key in plugin.registry}
    assert touched <= registered, f"sdk_seam.py touches unregistered {touched - registered}"
    assert registered <= touched, (
        f"SDK_MEMBERS lists members no longer touched: {registered - touched}"
    )
    for key, why in plugin.registry.items():
        assert why.strip(), f"SDK_MEMBERS[{key!r}] says nothing about why"
        if key.startswith("singer_sdk."):
            module, _, name = key.rpartition(".")
            assert hasattr(importlib.import_module(module), name), f"singer-sdk has no {key}"
            continue
        owner, _, member = key.rpartition(".")
        assert owner in sdk, f"SDK_MEMBERS[{key!r}]: singer-sdk has no class {owner}"
        cls = sdk[owner]
        defined = hasattr(cls, member) or any(
            f"self.{member}" in inspect.getsource(k)
            for k in cls.__mro__
            if k.__module__.split(".")[0] == "singer_sdk"
        )
        assert defined, f"singer-sdk's {owner} no longer has {member}: adapt sdk_seam.py"
