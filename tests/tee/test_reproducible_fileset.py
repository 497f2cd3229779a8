"""Two builds in different directories measure the same files: the recipe's rules, each shown by a build.

Without Gramine: the measured set is computed as gramine-manifest expands it (tee.gramine_pkg.fileset), over a
tree staged under a root as gramine-sgx-sign --chroot would measure it. What makes two builds differ is shown
too (the negative controls), so each rule of the recipe in docs/gramine.md is tested, not assumed. The whole
release (runtime, Gramine, MRENCLAVE) is built twice in tests/packaging/test_release_gramine.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from enclavefl.tee.gramine_pkg.fileset import TrustedFile, expand_trusted_files, file_set_digest

REPO = Path(__file__).resolve().parents[2]
PREFIX = "/opt/enclavefl/venv"
SITE = f"{PREFIX}/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


def pip(*args: str, cwd: Path) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800", "PIP_NO_INPUT": "1"}
    done = subprocess.run([sys.executable, "-m", "pip", "--isolated", "-q", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"pip could not build/install offline here: {done.stderr.strip()[-300:]}")


def build(base: Path, *, by_name: bool = True) -> Path:
    """One build of the enclave venv's enclavefl under `base`: wheel from a copy of the source, installed with
    --no-compile into a tree staged at base/root with the fixed prefix. Returns the staging root."""
    source = base / "source"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(base / "wheels"), str(source), cwd=base)
    target = "enclavefl" if by_name else str(next((base / "wheels").glob("enclavefl-*.whl")))
    pip("install", "--ignore-installed", "--no-compile", "--no-deps", "--no-index", "--find-links",
        str(base / "wheels"), "--root", str(base / "root"), "--prefix", PREFIX, target, cwd=base)  # fmt: skip
    return base / "root"


def measured(root: Path) -> tuple[TrustedFile, ...]:
    entries = [f"file:{SITE}/{entry.name}/" for entry in sorted((root / SITE.lstrip("/")).iterdir())]
    return expand_trusted_files(entries, root=root)


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build(tmp_path_factory.mktemp("build-a")), build(tmp_path_factory.mktemp("elsewhere") / "b")


@pytest.mark.slow
def test_two_builds_in_different_directories_measure_the_same_files(two_builds: tuple[Path, Path]) -> None:
    first, second = (measured(root) for root in two_builds)

    assert [f.uri for f in first] == [f.uri for f in second]
    assert first == second
    assert file_set_digest(first) == file_set_digest(second)
    assert any(f.uri.endswith("/enclavefl/enclave/main.py") for f in first)
    assert not [f.uri for f in first if f.uri.endswith(".pyc")]  # --no-compile: no timestamped bytecode


@pytest.mark.slow
def test_installing_from_a_wheel_path_records_it_and_breaks_reproducibility(
    tmp_path: Path, two_builds: tuple[Path, Path]
) -> None:
    # The negative control for "install by name from a wheelhouse": pip writes direct_url.json naming the path.
    by_path = build(tmp_path / "by-path", by_name=False)

    reference, other = measured(two_builds[0]), measured(by_path)

    assert file_set_digest(reference) != file_set_digest(other)
    assert {f.uri for f in other} - {f.uri for f in reference} == {
        f"file:{SITE}/enclavefl-0.1.0.dist-info/direct_url.json"
    }
