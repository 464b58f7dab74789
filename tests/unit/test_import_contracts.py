"""The layer contracts (DESIGN.md "Layers") hold: import-linter, configured in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _lint_imports(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the venv's import-linter (the console script beside this interpreter) from the repo root."""
    script = Path(sys.executable).with_name("lint-imports")
    if script.exists():
        command = [str(script)]
    else:  # importlinter.cli has no __main__: call its entry point
        command = [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
        ]
    return subprocess.run(
        [*command, "--no-logo", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_contracts_are_configured() -> None:
    ids = [c.get("id") for c in CONTRACTS]
    assert all(ids), "every contract needs an id (run one with lint-imports --contract ID)"
    assert len(set(ids)) == len(ids)
    assert {c["type"] for c in CONTRACTS} >= {"forbidden", "independence", "layers"}


@pytest.mark.parametrize("contract", CONTRACTS, ids=[c.get("id", "?") for c in CONTRACTS])
def test_contract_is_kept(contract: dict[str, object]) -> None:
    result = _lint_imports("--contract", str(contract["id"]))
    assert result.returncode == 0, (
        f"import contract {contract['name']!r} is broken:\n{result.stdout}\n{result.stderr}"
    )
