"""Layering: the core never imports the leaderboard or a specific backend; plugins use only the public API.

Read from the source (import statements, including those inside functions), so a lazy import
cannot hide a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

# What a third-party plugin may import from vlmbench (the public API).
PUBLIC = {
    "vlmbench",
    "vlmbench.backend",
    "vlmbench.errors",
    "vlmbench.hookspecs",
    "vlmbench.http",
    "vlmbench.redact",
    "vlmbench.testing",
    "vlmbench.pluginmanager",
    "vlmbench.cli.commands",
    "vlmbench.scoring.base",
    "vlmbench.scoring.judgecache",
}
# The library modules the leaderboard builds on besides the public API (documented in its modules).
LEADERBOARD_LIBRARY = {
    "vlmbench.evaluation",
    "vlmbench.records",
    "vlmbench.results",
    "vlmbench.runfolder",
    "vlmbench.registry",
    "vlmbench.runner",
    "vlmbench.taskconfig",
    "vlmbench.scoring.aggregate",
    "vlmbench.samples",
    "vlmbench.safeyaml",
}


def imports(folder: Path) -> dict[str, set[str]]:
    """Every module each file under ``folder`` imports (absolute names)."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(REPO))] = names
    return found


def test_core_never_imports_the_leaderboard_or_a_backend() -> None:
    bad = {
        file: sorted(n for n in names if n.split(".")[0] in ("vlmbench_leaderboard", "vlmbench_plugins"))
        for file, names in imports(REPO / "vlmbench").items()
    }
    assert {f: n for f, n in bad.items() if n} == {}


def test_core_imports_no_torch_at_module_level() -> None:
    for path in sorted((REPO / "vlmbench").rglob("*.py")):
        if "testing" in path.parts:
            continue  # test helpers build tiny models with torch
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
        top |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
        assert not top & {"torch", "transformers", "accelerate"}, path


def test_backends_use_only_the_public_api() -> None:
    bad = {
        file: sorted(n for n in names if n.startswith("vlmbench.") and not any(n == p or n.startswith(p + ".") for p in PUBLIC - {"vlmbench"}))
        for file, names in imports(REPO / "plugins").items()
    }
    assert {f: n for f, n in bad.items() if n} == {}


def test_the_leaderboard_uses_the_public_api_and_the_documented_library() -> None:
    allowed = PUBLIC | LEADERBOARD_LIBRARY
    bad = {
        file: sorted(n for n in names if n.startswith("vlmbench.") and n not in allowed and not n.startswith("vlmbench.http"))
        for file, names in imports(REPO / "leaderboard").items()
    }
    assert {f: n for f, n in bad.items() if n} == {}


def test_one_import_name_per_file() -> None:
    # No package folder is reachable under a second name: plugins/ and leaderboard/ are source roots, tasks/ has no Python.
    assert not list((REPO / "tasks").rglob("*.py"))
    assert not (REPO / "plugins" / "__init__.py").exists() and not (REPO / "leaderboard" / "__init__.py").exists()
    assert not (REPO / "build").exists() or not list((REPO / "build").rglob("*.py")), "a stale build/ copy doubles every file"


def test_every_package_folder_is_shipped() -> None:
    """A regular install ships only the packages pyproject.toml lists: a new package folder must be listed."""
    import tomllib

    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = set()
    for name, folder in setuptools["package-dir"].items():
        root = REPO / folder
        found |= {".".join((name, *p.parent.relative_to(root).parts)) for p in root.rglob("__init__.py")}
    assert found - listed == set()  # (tasks/ is listed too: data folders without Python)
