"""Two builds in different directories measure the same files: the recipe's rules, each shown by a build.

Without Gramine: the measured set is computed as gramine-manifest expands it (tee.gramine_pkg.fileset), over a
tree staged under a root as gramine-sgx-sign --chroot would measure it. What makes two builds differ is shown
too (the negative controls), so each rule of the recipe in docs/gramine.md is tested, not assumed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from enclavefl.tee.gramine_pkg import ManifestParams, write_enclave_project
from enclavefl.tee.gramine_pkg.fileset import TrustedFile, expand_trusted_files, file_set_digest

REPO = Path(__file__).resolve().parents[2]
PREFIX = "/opt/enclavefl/venv"
SITE = f"{PREFIX}/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
FIXED = {
    "state_dir": "/srv/enclavefl/state",
    "job_dir": "/srv/enclavefl/job",
    "collateral_dir": "/srv/enclavefl/collateral",
}


def pip(*args: str, cwd: Path) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800", "PIP_NO_INPUT": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--isolated", "-q", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
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
    pip(
        "install",
        "--ignore-installed",
        "--no-compile",
        "--no-deps",
        "--no-index",
        "--find-links",
        str(base / "wheels"),
        "--root",
        str(base / "root"),
        "--prefix",
        PREFIX,
        target,
        cwd=base,
    )
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


def rendered_manifest(directory: Path, params: ManifestParams) -> dict[str, Any]:
    jinja2 = pytest.importorskip("jinja2")
    project = write_enclave_project(directory, params)
    values = {
        "gramine": type("G", (), {"runtimedir": staticmethod(lambda libc="glibc": "/usr/lib/gramine/runtime")})(),
        "venv_python": params.venv_python,
        "venv_dir": PREFIX,
        "python_stdlib": "/usr/lib/python3.11",
        "arch_libdir": "/lib/x86_64-linux-gnu",
        "site_packages_trusted": f"{SITE}/enclavefl/",
        "native_libraries": "/lib/x86_64-linux-gnu/libz.so.1",
        "log_level": params.log_level,
        "enclave_size": params.enclave_size,
        "max_threads": str(params.thread_slots),
        "rpc_workers": str(params.rpc_workers),
        "tokio_workers": str(params.tokio_workers),
        "isv_prod_id": "0",
        "isv_svn": "0",
        "port": str(params.port),
        "state_dir": params.state_dir,
        "job_dir": params.job_dir,
        "collateral_dir": params.collateral_dir,
    }
    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(project.manifest_template.read_text())
    return tomllib.loads(template.render(**values))


def test_the_manifest_names_no_build_directory_when_paths_are_pinned(tmp_path: Path) -> None:
    pinned = ManifestParams(venv_python=f"{PREFIX}/bin/python3", **FIXED)

    first = rendered_manifest(tmp_path / "a" / "enclave", pinned)
    second = rendered_manifest(tmp_path / "elsewhere" / "enclave", pinned)

    assert first == second
    assert str(tmp_path) not in repr(first)


def test_default_paths_under_the_build_directory_change_the_measurement(tmp_path: Path) -> None:
    # The negative control for pinning: `enclave init DIR` defaults the job/state/collateral dirs to DIR/...
    def params(directory: Path) -> ManifestParams:
        return ManifestParams(
            venv_python=f"{PREFIX}/bin/python3",
            state_dir=str(directory / "state"),
            job_dir=str(directory / "job"),
            collateral_dir=str(directory / "collateral"),
        )

    first = rendered_manifest(tmp_path / "a", params(tmp_path / "a"))
    second = rendered_manifest(tmp_path / "b", params(tmp_path / "b"))

    assert first["fs"]["mounts"] != second["fs"]["mounts"]
    assert first["sgx"]["trusted_files"] != second["sgx"]["trusted_files"]
