"""Who may import what (ARCHITECTURE.md): imports point down the layers, never up or sideways.

Ruff keeps Rich, Typer and the CLI in their modules (banned-api) and the start-up path light
(banned-module-level-imports); this reads every import of the package, at module level or in a
function, and checks the direction ruff cannot express per module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "invoicegen"

# Lowest first. A module imports modules of lower layers only; a package's modules (seeding/)
# import each other freely.
LAYERS: list[set[str]] = [
    {"__init__", "errors", "interrupts", "options", "currencies"},
    {"urls", "models", "identities"},
    {"settings", "factory_signatures"},
    {"db"},
    {"locks", "factories"},
    {"schema", "manifest", "rows", "writers", "workers"},
    {"guards", "stats", "seeding", "alembic", "pytest_async"},
    {"pytest_templates"},
    {"console", "pytest_plugin"},
    {"cli"},
    {"__main__"},
]
LAYER = {name: level for level, names in enumerate(LAYERS) for name in names}
# Third-party libraries confined to a few modules (Rich and Typer: ruff's banned-api).
ONLY_IN = {"alembic": {"schema"}}
# migrations/env.py runs inside Alembic: models and the engine, never a command or a service.
ENV_MAY_IMPORT = {"models", "settings", "urls", "db", "schema", "errors"}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in the file, wherever it stands."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            if node.module == "invoicegen":
                found += [(node.lineno, f"invoicegen.{alias.name}") for alias in node.names]
    return found


def _own(name: str) -> str | None:
    """The top-level invoicegen module (or package) a dotted name belongs to."""
    parts = name.split(".")
    return parts[1] if parts[0] == "invoicegen" and len(parts) > 1 else None


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_layers(path: Path) -> None:
    relative = path.relative_to(PACKAGE)
    me = relative.parts[0].removesuffix(".py")
    assert me in LAYER, f"{relative}: add the new module to LAYERS (and ARCHITECTURE.md)"
    wrong = []
    for line, name in _imports(path):
        other = _own(name)
        if other is not None and other != me:
            if other not in LAYER:
                continue  # a name imported from the package itself (__version__)
            if LAYER[other] >= LAYER[me]:
                wrong.append(f"line {line}: {name} (layer {LAYER[other]} >= {LAYER[me]})")
        library = name.split(".")[0]
        if library in ONLY_IN and me not in ONLY_IN[library]:
            wrong.append(f"line {line}: {name} (only {', '.join(sorted(ONLY_IN[library]))})")
    assert not wrong, f"{relative} (layer {LAYER[me]}) imports upwards: {wrong}"


def test_the_migration_environment_imports_models_and_engines_only() -> None:
    imported = {_own(name) for _, name in _imports(ROOT / "migrations" / "env.py")}
    assert imported - {None} <= ENV_MAY_IMPORT, imported - ENV_MAY_IMPORT - {None}


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from invoicegen import cli, console\n")
    names = {_own(name) for _, name in _imports(source)}
    assert {"cli", "console"} <= names
    assert LAYER["cli"] > LAYER["pytest_plugin"] and LAYER["console"] >= LAYER["pytest_plugin"]
