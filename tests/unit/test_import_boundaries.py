"""The house's rooms (docs/architecture.md), checked on the source: who may import whom.

Read with `ast`, not by importing, so a forbidden import hidden in a function body counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}


def imported_packages(path: Path) -> set[str]:
    """Top-level first-party packages a file imports (relative imports stay inside its own package)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & FIRST_PARTY


def files(folder: str) -> list[Path]:
    out = sorted((ROOT / folder).rglob("*.py"))
    assert out, f"no Python files under {folder}"
    return out


ALLOWED = {
    # the HE core: nothing of HELIX (no silo, no wire)
    "helix_he": set(),
    # the wire: nothing of HELIX
    "shared_protocol": set(),
    "provider_server": FIRST_PARTY - {"client_agent", "helix_demo", "helix_eval", "benchmarks"},
    "client_agent": FIRST_PARTY - {"provider_server", "helix_demo", "helix_eval", "benchmarks"},
}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_its_room_allows(package: str) -> None:
    bad = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - ALLOWED[package] - {package})
        for path in files(package)
    }
    assert not {k: v for k, v in bad.items() if v}, f"{package} imports outside its room"


def test_shared_packages_import_no_silo() -> None:
    silos = {"provider_server", "client_agent"}
    for package in ("helix_web", "helix_alignment", "helix_embeddings", "helix_datasets", "helix_pki"):
        for path in files(package):
            assert not imported_packages(path) & silos, f"{path.relative_to(ROOT)} imports a silo"


def test_circuit_tests_import_only_the_he_core() -> None:
    for path in files("tests/unit/helix_he"):
        assert imported_packages(path) <= {"helix_he"}, f"{path.relative_to(ROOT)}: {imported_packages(path)}"


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from provider_server.state import ProviderState\n    import client_agent.jobs\n")
    assert imported_packages(probe) == {"provider_server", "client_agent"}
