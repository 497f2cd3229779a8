"""ManifestParams validation and the enclave build directory written from it."""

from __future__ import annotations

import dataclasses
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from enclavefl.errors import ConfigError
from enclavefl.tee.gramine_pkg import ManifestParams, parse_enclave_size, write_enclave_project
from enclavefl.tee.gramine_pkg.manifest import aggregator_manifest_template, fill_markers
from enclavefl.tee.gramine_pkg.threads import required_max_threads

VALID: dict[str, Any] = {
    "venv_python": "/opt/efl venv/bin/python3",  # a space must survive shell quoting
    "state_dir": "/srv/efl/state",
    "job_dir": "/srv/efl/job",
    "collateral_dir": "/srv/efl/collateral",
}


def make(**changes: Any) -> ManifestParams:
    return ManifestParams(**{**VALID, **changes})


@pytest.mark.parametrize(("text", "size"), [("256M", 2**28), ("512M", 2**29), ("1G", 2**30), ("4g", 2**32)])
def test_power_of_two_sizes_parse(text: str, size: int) -> None:
    assert parse_enclave_size(text) == size


@pytest.mark.parametrize("text", ["3G", "768M", "1.5G", "", "G", "-1G", "1GB", "0M", "128M"])
def test_sizes_that_are_not_a_power_of_two_or_too_small_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="enclave_size"):
        parse_enclave_size(text)


def test_defaults_are_a_production_configuration() -> None:
    params = make()

    assert (params.enclave_size, params.log_level, params.port) == ("1G", "error", 7443)
    assert params.max_threads is None  # derived from the pool sizes
    assert params.thread_slots == required_max_threads(rpc_workers=params.rpc_workers, tokio_workers=1)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("enclave_size", "3G", "power of two"),
        ("max_threads", 3, "max_threads"),
        ("max_threads", 79, "max_threads must be between 80"),
        ("rpc_workers", 0, "rpc_workers"),
        ("tokio_workers", 0, "tokio_workers"),
        ("collateral_dir", "collateral", "absolute"),
        ("isv_prod_id", 65536, "isv_prod_id"),
        ("isv_svn", -1, "isv_svn"),
        ("port", 0, "port"),
        ("log_level", "debug", "log_level"),
        ("log_level", "warning", "log_level"),
        ("venv_python", "venv/bin/python3", "absolute"),
        ("state_dir", '/srv/"x', "quotes"),
        ("job_dir", "/srv/{{ evil }}", "Jinja"),
        ("job_dir", "/srv/a:b", ":"),
        ("state_dir", "/srv/state\n", "absolute"),
        ("signing_key", "key.pem", "absolute"),
    ],
)
def test_invalid_parameters_are_refused_with_the_field_named(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make(**{field: value})


def test_params_are_frozen() -> None:
    params = make()

    with pytest.raises(dataclasses.FrozenInstanceError):
        params.port = 1  # type: ignore[misc]


def test_project_has_template_scripts_readme_and_job_dir(tmp_path: Path) -> None:
    params = make(job_dir=str(tmp_path / "job"), state_dir=str(tmp_path / "state"))

    project = write_enclave_project(tmp_path / "enclave", params)

    assert project.manifest_template.read_text() == aggregator_manifest_template()
    assert project.job_dir.is_dir()
    assert "job.toml" in project.readme.read_text()
    for script in (project.build_script, project.run_script):
        assert script.stat().st_mode & stat.S_IXUSR


def test_build_script_carries_every_parameter(tmp_path: Path) -> None:
    params = make(enclave_size="2G", max_threads=96, isv_prod_id=9, isv_svn=4, port=9000, log_level="none")

    text = write_enclave_project(tmp_path, params).build_script.read_text()

    for line in (
        "VENV_PYTHON='/opt/efl venv/bin/python3'",
        "ENCLAVE_SIZE=2G",
        "MAX_THREADS=96",
        "ISV_PROD_ID=9",
        "ISV_SVN=4",
        "PORT=9000",
        "LOG_LEVEL=none",
        "STATE_DIR=/srv/efl/state",
        "JOB_DIR=/srv/efl/job",
    ):
        assert line in text.splitlines()
    assert "--date 0000-00-00" in text
    assert "enclave measure aggregator.sig --policy-out policy.toml" in text
    assert "enclave check-manifest aggregator.manifest" in text


def test_build_script_uses_gramines_default_key_unless_one_is_given(tmp_path: Path) -> None:
    default_text = write_enclave_project(tmp_path / "a", make()).build_script.read_text()
    given_text = write_enclave_project(tmp_path / "b", make(signing_key="/keys/k.pem")).build_script.read_text()

    assert '"${XDG_CONFIG_HOME:-$HOME/.config}/gramine/enclave-key.pem"' in default_text
    assert "DEFAULT_SIGNING_KEY=/keys/k.pem" in given_text.splitlines()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_scripts_are_valid_bash(tmp_path: Path) -> None:
    project = write_enclave_project(tmp_path, make())

    for script in (project.build_script, project.run_script):
        subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_build_script_stops_before_signing_when_gramine_is_missing(tmp_path: Path) -> None:
    project = write_enclave_project(tmp_path, make())
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    result = subprocess.run(["bash", str(project.build_script)], env=env, capture_output=True, text=True)

    assert result.returncode != 0
    assert "gramine-" in result.stderr
    assert not (tmp_path / "aggregator.manifest").exists()


def test_existing_project_is_not_overwritten_without_force(tmp_path: Path) -> None:
    write_enclave_project(tmp_path, make())
    (tmp_path / "build.sh").write_text("# edited by the operator\n")

    with pytest.raises(ConfigError, match="overwrite"):
        write_enclave_project(tmp_path, make(port=9000))
    assert (tmp_path / "build.sh").read_text() == "# edited by the operator\n"


def test_force_overwrites_an_existing_project(tmp_path: Path) -> None:
    write_enclave_project(tmp_path, make())

    project = write_enclave_project(tmp_path, make(port=9000), force=True)

    assert "PORT=9000" in project.build_script.read_text().splitlines()


def test_fill_markers_refuses_unknown_or_leftover_markers() -> None:
    with pytest.raises(ConfigError, match="no marker"):
        fill_markers("a @X@ b", {"Y": "1"})
    with pytest.raises(ConfigError, match="unfilled"):
        fill_markers("a @X@ @Z@", {"X": "1"})


def test_packaged_template_has_no_unfilled_marker() -> None:
    text = aggregator_manifest_template()

    assert "@AGGREGATOR_ARGV@" not in text
    assert 'path = "/enclavefl/state/"' in text
