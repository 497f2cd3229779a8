"""check_rendered_manifest refuses every manifest change that weakens the enclave's guarantees."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from enclavefl.errors import ConfigError, ManifestHardeningError
from enclavefl.tee.gramine_pkg import check_rendered_manifest


def hardened() -> dict[str, Any]:
    """A minimal rendered manifest with the properties our template guarantees."""
    return {
        "libos": {"entrypoint": "/opt/venv/bin/python3"},
        "loader": {
            "entrypoint": {"uri": "file:gramine/libsysdb.so", "sha256": "00" * 32},
            "log_level": "error",
            "argv": ["/opt/venv/bin/python3", "-I", "-m", "enclavefl.enclave.main", "--rpc-workers", "4"],
            "env": {"OMP_NUM_THREADS": "1", "LD_LIBRARY_PATH": {"value": "/lib"}},
        },
        "fs": {
            "mounts": [
                {"type": "tmpfs", "path": "/tmp"},
                {"path": "/lib", "uri": "file:gramine/runtime/glibc"},
                {"type": "encrypted", "path": "/enclavefl/state/", "uri": "file:state/", "key_name": "_sgx_mrenclave"},
                {"path": "/enclavefl/collateral", "uri": "file:collateral"},
            ]
        },
        "sgx": {
            "debug": False,
            "remote_attestation": "dcap",
            "enclave_size": "1G",
            "max_threads": 40,  # what 4 gRPC work threads need (threads.py)
            "trusted_files": [
                "file:venv/bin/python3",
                {"uri": "file:runtime/usr/lib/python3.11/os.py", "sha256": "0" * 64},
            ],
            "allowed_files": ["file:collateral/"],
        },
    }


def set_key(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def mutate(manifest: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = manifest
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value

    return mutate


def delete_key(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(manifest: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = manifest
        for parent in parents:
            node = node[parent]
        del node[leaf]

    return mutate


def add_mount(mount: dict[str, str]) -> Callable[[dict[str, Any]], None]:
    return lambda manifest: manifest["fs"]["mounts"].append(mount)


def drop_encrypted_mount(manifest: dict[str, Any]) -> None:
    manifest["fs"]["mounts"] = [m for m in manifest["fs"]["mounts"] if m.get("type") != "encrypted"]


def state_key(key_name: str | None) -> Callable[[dict[str, Any]], None]:
    """Seal the state mount under another key (None: Gramine's "default" key, provisioned from outside)."""

    def mutate(manifest: dict[str, Any]) -> None:
        for mount in manifest["fs"]["mounts"]:
            if mount.get("type") == "encrypted":
                mount.pop("key_name")
                if key_name is not None:
                    mount["key_name"] = key_name

    return mutate


WEAKENINGS: dict[str, Callable[[dict[str, Any]], None]] = {
    "debug enclave": set_key("sgx.debug", True),
    "host env": set_key("loader.insecure__use_host_env", True),
    "host argv": set_key("loader.insecure__use_cmdline_argv", True),
    "key in manifest": set_key("fs.insecure__keys.default", "00" * 16),
    "no attestation": set_key("sgx.remote_attestation", "none"),
    "attestation missing": delete_key("sgx.remote_attestation"),
    "verbose log": set_key("loader.log_level", "debug"),
    "lax file policy": set_key("sgx.file_check_policy", "allow_all_but_log"),
    "stats": set_key("sgx.enable_stats", True),
    "profiling": set_key("sgx.profile.enable", "main"),
    "allowed file": set_key("sgx.allowed_files", ["file:/etc/passwd"]),
    "size not power of two": set_key("sgx.enclave_size", "3G"),
    "too few threads": set_key("sgx.max_threads", 2),
    "argv from a file": set_key("loader.argv_src_file", "file:argv"),
    "argv missing": delete_key("loader.argv"),
    "env from a file": set_key("loader.env_src_file", "file:env"),
    "env passthrough": set_key("loader.env.PATH", {"passthrough": True}),
    "shared memory": add_mount({"type": "untrusted_shm", "path": "/dev/shm", "uri": "dev:/dev/shm"}),
    "state in clear": drop_encrypted_mount,
    # issue 10 §3: the operator signs enclaves, so an MRSIGNER-sealed state opens in the operator's own enclave
    "state sealed to MRSIGNER": state_key("_sgx_mrsigner"),
    "state under the default key": state_key(None),
    "second mount sealed to MRSIGNER": add_mount(
        {"type": "encrypted", "path": "/enclavefl/more/", "uri": "file:more/", "key_name": "_sgx_mrsigner"}
    ),
    "allowed file beside the collateral": set_key("sgx.allowed_files", ["file:collateral/", "file:collateral/../job/"]),
    "allowed collateral dir not mounted there": set_key("sgx.allowed_files", ["file:elsewhere/"]),
    # the release carries its runtime: a host path in the manifest would trust the host's /usr again
    "trusted file on the host": set_key("sgx.trusted_files", ["file:/usr/lib/python3.11/"]),
    "trusted file above the release": set_key("sgx.trusted_files", ["file:runtime/../../usr/lib/"]),
    "runtime mounted from the host": add_mount(
        {"path": "/usr/lib/x86_64-linux-gnu", "uri": "file:/usr/lib/x86_64-linux-gnu"}
    ),
    "LibOS from the host": set_key("loader.entrypoint", {"uri": "file:/usr/lib/gramine/libsysdb.so"}),
    "state on a host path": add_mount(
        {"type": "encrypted", "path": "/s/", "uri": "file:/srv/s/", "key_name": "_sgx_mrenclave"}
    ),
    "threads below the pools": set_key("sgx.max_threads", 39),
}


def test_hardened_manifest_passes() -> None:
    check_rendered_manifest(hardened())


@pytest.mark.parametrize("weakening", sorted(WEAKENINGS))
def test_each_weakening_is_refused(weakening: str) -> None:
    manifest = copy.deepcopy(hardened())
    WEAKENINGS[weakening](manifest)

    with pytest.raises(ManifestHardeningError):
        check_rendered_manifest(manifest)


def test_an_mrsigner_sealed_state_is_refused_with_the_reason() -> None:
    manifest = copy.deepcopy(hardened())
    state_key("_sgx_mrsigner")(manifest)

    with pytest.raises(ManifestHardeningError, match="must be '_sgx_mrenclave', or another enclave signed"):
        check_rendered_manifest(manifest)


def test_hardening_errors_are_config_errors() -> None:
    assert issubclass(ManifestHardeningError, ConfigError)


def test_insecure_key_error_names_the_key() -> None:
    manifest = hardened()
    set_key("sys.insecure__allow_eventfd", True)(manifest)

    with pytest.raises(ManifestHardeningError, match=r"sys\.insecure__allow_eventfd"):
        check_rendered_manifest(manifest)


@pytest.mark.parametrize(
    "weakening",
    [
        "trusted file on the host",
        "trusted file above the release",
        "runtime mounted from the host",
        "LibOS from the host",
        "state on a host path",
    ],
)
def test_a_host_path_is_refused_as_outside_the_release(weakening: str) -> None:
    manifest = copy.deepcopy(hardened())
    WEAKENINGS[weakening](manifest)

    with pytest.raises(ManifestHardeningError, match="outside the release directory"):
        check_rendered_manifest(manifest)
