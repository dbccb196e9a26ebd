"""The package layout and its one-way import rule, checked on the source (AST, no imports run).

    cli  →  paper packages (cytoself, statcell, integrated_cell, vaeplus) / profiling
         →  spine (data, layers, losses, training)  →  core (errors, atomic, backend, naming, figures)

- a paper package never imports another paper package, nor profiling; profiling imports no
  paper package (the two sit side by side, both above the spine);
- the spine never imports a paper package, profiling or cli; core imports only core;
- a command module ``cli/<name>.py`` imports the library and ``cli/_*.py`` helpers, never
  another command module;
- click lives in ``cli/`` only.

Imports inside function bodies count. The one sanctioned exception: ``statcell_tf/registry.py``
names the paper modules as strings and imports them with importlib (papers are plugins);
the test checks that registry instead.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "statcell_tf"
from statcell_tf import registry  # noqa: E402  (light: names and a base class)

CORE = {"errors", "atomic", "backend", "naming", "registry", "figures", "gallery", "parallel", "limits", ""}  # "" = the package's own __init__
SPINE = {"data", "layers", "losses", "training"}
PAPERS = {target.split(".")[1] for target in registry.BUILTIN.values()}  # the paper packages
PROFILING = {"profiling"}
CLI = {"cli"}
LEVELS = [CORE, SPINE, PAPERS | PROFILING, CLI]  # lowest first
REGISTRY_MODULE = "statcell_tf.registry"


def _modules() -> dict[str, Path]:
    """Dotted module name → file, for every module of the package."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: Path) -> list[str]:
    """Every module `name` imports (top level and inside functions); ``from X import y``
    gives ``X.y`` when that is a module of the package, else ``X``."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append(candidate if candidate in MODULES else base)
    return found


IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def _top(module: str) -> str | None:
    """The first-level part of a statcell_tf module (``statcell_tf.cli.x`` → ``cli``);
    ``""`` for the package itself; None outside statcell_tf."""
    parts = module.split(".")
    if parts[0] != "statcell_tf":
        return None
    return parts[1] if len(parts) > 1 else ""


def _level(top: str) -> int:
    for index, members in enumerate(LEVELS):
        if top in members:
            return index
    raise AssertionError(f"statcell_tf/{top} belongs to no layer of the layout; add it to tests/test_layout.py")


def _violations(rule) -> list[str]:
    lines = []
    for name, targets in IMPORTS.items():
        for target in sorted(set(targets)):
            why = rule(name, target)
            if why:
                lines.append(f"{name} → {target} ({why})")
    return lines


def _assert_none(lines: list[str]) -> None:
    assert not lines, "offending module → import:\n" + "\n".join(lines)


def test_every_first_level_part_belongs_to_a_layer():
    for name in MODULES:
        _level(_top(name))


def test_imports_run_one_way():
    def rule(name, target):
        source, destination = _top(name), _top(target)
        if destination is None or source == destination:
            return None
        if _level(destination) > _level(source):
            return "imports a higher layer"
        if _level(destination) == _level(source) and source not in SPINE | CORE:
            return "a paper package or profiling imports another of its layer"
        return None

    _assert_none(_violations(rule))


def test_commands_never_import_another_command():
    def is_command(module):
        parts = module.split(".")
        return len(parts) == 3 and parts[:2] == ["statcell_tf", "cli"] and not parts[2].startswith("_")

    def rule(name, target):
        if is_command(name) and is_command(target) and target != name:
            return "a command imports another command; move the shared code into the library or cli/_*.py"
        return None

    _assert_none(_violations(rule))


def test_click_only_in_cli():
    def rule(name, target):
        if _top(name) not in CLI and target.split(".")[0] == "click":
            return "library code imports click; take a progress/log callable instead"
        return None

    _assert_none(_violations(rule))


def test_the_model_registry_names_every_serialisable_model_module():
    """The registry's papers name (`Paper.keras_modules`) every module outside the spine that
    registers a Keras-serialisable class, and nothing else, so that `load_keras` finds them."""
    listed = set(registry.keras_modules())
    registering = {
        name for name, path in MODULES.items()
        if _top(name) not in SPINE | CORE and "register_keras_serializable" in path.read_text()
    }
    assert listed == registering
    assert all(name in MODULES for name in listed)


def test_only_the_registry_lists_or_compares_paper_names():
    """Papers are plugins: outside the registry no module lists three or more paper names or
    compares a value with a paper name (``paper == "cytoself"``)."""
    names = set(registry.BUILTIN)
    listing, comparing = [], []
    for name, path in MODULES.items():
        if name == REGISTRY_MODULE:
            continue
        tree = ast.parse(path.read_text())
        found = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in names}
        if len(found) >= 3:
            listing.append(f"{name} lists {sorted(found)}")
        comparing += [f"{name}:{n.lineno}" for n in ast.walk(tree) if isinstance(n, ast.Compare)
                      and any(isinstance(c, ast.Constant) and c.value in names for c in [n.left, *n.comparators])]
    _assert_none(listing + comparing)


def test_no_other_spine_module_names_a_paper_module():
    def mentions(path):
        tree = ast.parse(path.read_text())
        return sorted(
            node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and any(node.value.startswith(f"statcell_tf.{p}") for p in PAPERS | PROFILING | CLI)
        )

    found = {
        name: mentions(path) for name, path in MODULES.items()
        if _top(name) in SPINE | CORE and name != REGISTRY_MODULE and mentions(path)
    }
    _assert_none([f"{name} → {', '.join(names)} (only {REGISTRY_MODULE} may name one)" for name, names in found.items()])


def test_packages_and_commands_import_without_tensorflow():
    """``--help`` stays instant: no package ``__init__`` and no command module loads TensorFlow."""
    packages = sorted(name for name, path in MODULES.items() if path.name == "__init__.py")
    commands = sorted(name for name in MODULES if name.startswith("statcell_tf.cli.") and "._" not in name)
    code = (
        "import importlib, sys\n"
        f"for name in {packages + commands!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
