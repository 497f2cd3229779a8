"""The INSECURE gramine-direct variant of a release's manifest: what it changes, and that a release refuses it.

The variant is for running the node under Gramine's LibOS without SGX (tests/integration/test_gramine_release.py);
it must never pass as a release manifest, and it must keep everything else of the release's manifest.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from fake_root import make_fake_root

from enclavefl.errors import ConfigError, ManifestHardeningError
from enclavefl.tee.gramine_pkg import check_rendered_manifest
from enclavefl.tee.gramine_pkg.assemble import assemble_release
from enclavefl.tee.insecure import InsecureSimulationWarning
from enclavefl.tee.insecure.direct_manifest import (
    DIRECT_KEY_NAME,
    PLATFORM_MOUNT,
    SITE_PACKAGES,
    insecure_direct_template,
)

ARGV = ["/enclavefl/venv/bin/python3", "-I", "-m", "enclavefl.cli.main", "node", "serve"]
KEY = "0f" * 16


@pytest.fixture
def template(tmp_path: Path) -> str:
    root, release = make_fake_root(tmp_path)
    assemble_release(release, root=root)
    return (release / "aggregator.manifest.template").read_text()


def _direct(template: str, tmp_path: Path) -> dict[str, object]:
    with pytest.warns(InsecureSimulationWarning):
        text = insecure_direct_template(template, argv=ARGV, platform_dir=tmp_path / "platform", key_hex=KEY)
    assert text.startswith("# INSECURE")
    return tomllib.loads(text)


def test_the_variant_changes_the_state_key_the_command_and_the_platform_mount_only(
    template: str, tmp_path: Path
) -> None:
    release, direct = tomllib.loads(template), _direct(template, tmp_path)

    state = [m for m in direct["fs"]["mounts"] if m.get("type") == "encrypted"]  # type: ignore[index]
    assert [m["key_name"] for m in state] == [DIRECT_KEY_NAME]
    assert direct["fs"]["insecure__keys"] == {DIRECT_KEY_NAME: KEY}  # type: ignore[index]
    assert direct["loader"]["argv"] == ARGV  # type: ignore[index]
    platform = {"path": PLATFORM_MOUNT, "uri": f"file:{tmp_path / 'platform'}"}
    assert direct["fs"]["mounts"][1] == platform  # type: ignore[index]  # after the tmpfs, which must stay first
    assert direct["fs"]["mounts"][0] == release["fs"]["mounts"][0] == {"type": "tmpfs", "path": "/tmp"}  # type: ignore[index]
    assert f"file:{SITE_PACKAGES}" in direct["sgx"]["trusted_files"]  # type: ignore[index]
    assert set(release["sgx"]["trusted_files"]) < set(direct["sgx"]["trusted_files"])  # type: ignore[index]
    # everything else is the release's: size, threads, attestation setting, the environment
    for key in ("enclave_size", "max_threads", "remote_attestation", "debug"):
        assert direct["sgx"][key] == release["sgx"][key]  # type: ignore[index]
    assert direct["loader"]["env"] == release["loader"]["env"]  # type: ignore[index]


def test_the_hardening_check_refuses_the_variant(template: str, tmp_path: Path) -> None:
    check_rendered_manifest(tomllib.loads(template))

    with pytest.raises(ManifestHardeningError):
        check_rendered_manifest(_direct(template, tmp_path))


@pytest.mark.parametrize("key", ["0F" * 16, "0f" * 15, "", "zz" * 16])
def test_a_key_that_is_not_128_bits_of_lowercase_hex_is_refused(template: str, tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match="128-bit"):
        insecure_direct_template(template, argv=ARGV, platform_dir=tmp_path, key_hex=key)


def test_a_template_that_is_not_a_release_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a release manifest template"):
        insecure_direct_template('loader.argv = ["x"]\n', argv=ARGV, platform_dir=tmp_path, key_hex=KEY)


def test_a_platform_path_that_would_break_the_toml_is_refused(template: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="quote"):
        insecure_direct_template(template, argv=ARGV, platform_dir=tmp_path / 'a"b', key_hex=KEY)
