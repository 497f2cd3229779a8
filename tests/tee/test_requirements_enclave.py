"""requirements-enclave.txt pins, with a hash, exactly what a base install of enclavefl needs: no torch, no
scikit-learn, no matplotlib; every distribution the enclave trusts is among them."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from enclavefl.tee.gramine_pkg import AGGREGATOR_DISTRIBUTIONS

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^ \\]+) \\\n    --hash=sha256:([0-9a-f]{64})$", re.MULTILINE)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned() -> dict[str, str]:
    text = (REPO / "requirements-enclave.txt").read_text()
    entries = PIN.findall(text)
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(body) == 2 * len(entries), "every requirement is one pin and one hash line"
    return {canonical(name): version for name, version, _ in entries}


def base_closure() -> set[str]:
    """Names a base install of enclavefl pulls in (no extras), from pyproject.toml and installed metadata."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pending = [Requirement(r).name for r in project["dependencies"]]
    seen: set[str] = set()
    while pending:
        name = canonical(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        for text in importlib.metadata.distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return seen


def test_every_base_dependency_is_pinned_with_a_hash_and_nothing_else() -> None:
    assert set(pinned()) == base_closure()


def test_the_enclave_venv_has_no_training_or_plotting_distribution() -> None:
    assert not {"torch", "scikit-learn", "matplotlib", "pillow"} & set(pinned())


def test_every_trusted_distribution_is_pinned() -> None:
    assert {canonical(d) for d in AGGREGATOR_DISTRIBUTIONS} - {"enclavefl"} <= set(pinned())
