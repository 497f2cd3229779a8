"""The aggregator's release manifest: rendered from the settings and a trusted list, every host URI in the release."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
from typing import Any

import pytest

from enclavefl.errors import ConfigError
from enclavefl.tee.gramine_pkg import (
    AGGREGATOR_DISTRIBUTIONS,
    AGGREGATOR_ENTRY_MODULE,
    ManifestParams,
    check_rendered_manifest,
    plan_site_packages,
    render_release_manifest,
)
from enclavefl.tee.gramine_pkg.threads import counted_threads
from enclavefl.tee.process_env import MALLOC_ARENA_MAX

FORBIDDEN_IN_ENCLAVE = ("torch", "matplotlib", "sklearn", "scikit_learn", "typer", "rich", "PIL", "pytest")
# What `enclavefl enclave assemble` passes (tee/gramine_pkg/assemble.py), site-packages cut to two entries.
TRUSTED = (
    "venv/bin/python3",
    "venv/pyvenv.cfg",
    "gramine/runtime/glibc/",
    "runtime/usr/lib/python3.11/",
    "runtime/usr/lib/x86_64-linux-gnu/",
    "venv/lib/python3.11/site-packages/numpy/",
    "venv/lib/python3.11/site-packages/enclavefl/enclave/main.py",
    "job/",
)

# Top-level and second-level keys Gramine's schema (python/graminelibos/manifest_check.py) knows.
GRAMINE_KEYS = {
    "fs": {"mounts", "root", "start_dir", "insecure__keys"},
    "libos": {"entrypoint", "check_invalid_pointers"},
    "loader": {
        "entrypoint",
        "argv",
        "argv_src_file",
        "env",
        "env_src_file",
        "gid",
        "insecure__use_cmdline_argv",
        "insecure__use_host_env",
        "insecure__disable_aslr",
        "log_file",
        "log_level",
        "uid",
    },
    "sgx": {
        "allowed_files",
        "cpu_features",
        "debug",
        "edmm_enable",
        "enable_stats",
        "enclave_size",
        "file_check_policy",
        "insecure__allow_memfaults_without_exinfo",
        "insecure__rpc_thread_num",
        "isvprodid",
        "isvsvn",
        "max_threads",
        "preheat_enclave",
        "profile",
        "ra_client_linkable",
        "ra_client_spid",
        "remote_attestation",
        "seal_key",
        "trusted_files",
        "use_exinfo",
        "vtune_profile",
        "trusted_files_cache_size",
    },
    "sys": {
        "allowed_ioctls",
        "brk",
        "disallow_subprocesses",
        "enable_extra_runtime_domain_names_conf",
        "enable_sigterm_injection",
        "experimental__enable_flock",
        "insecure__allow_eventfd",
        "ioctl_structs",
        "debug__mock_syscalls",
        "stack",
        "fds",
    },
}
PARAMS = ManifestParams(enclave_size="2G", rpc_workers=8, isv_prod_id=3, isv_svn=2, port=7443)


@pytest.fixture(scope="module")
def text() -> str:
    return render_release_manifest(PARAMS, trusted=TRUSTED)


@pytest.fixture(scope="module")
def manifest(text: str) -> dict[str, Any]:
    return tomllib.loads(text)


def all_keys(node: object, prefix: str = "") -> list[str]:
    keys: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            keys.append(prefix + key)
            keys.extend(all_keys(value, prefix + key + "."))
    elif isinstance(node, list):
        for item in node:
            keys.extend(all_keys(item, prefix))
    return keys


def test_the_rendered_manifest_leaves_nothing_for_jinja_or_the_markers(text: str) -> None:
    # gramine-manifest renders it as a Jinja template: no braces may reach it, and every @MARKER@ was filled
    assert "{{" not in text and "{%" not in text and "{#" not in text
    assert "@" not in text.replace("# ", "")


def test_rendered_manifest_is_a_production_dcap_enclave(manifest: dict[str, Any]) -> None:
    assert manifest["sgx"]["remote_attestation"] == "dcap"
    assert manifest["sgx"]["debug"] is False
    assert manifest["loader"]["log_level"] == "error"


def test_rendered_manifest_has_no_insecure_key_anywhere(manifest: dict[str, Any]) -> None:
    assert [k for k in all_keys(manifest) if "insecure__" in k] == []


def test_rendered_manifest_uses_only_keys_gramine_knows(manifest: dict[str, Any]) -> None:
    assert set(manifest) <= set(GRAMINE_KEYS)
    for table, known in GRAMINE_KEYS.items():
        assert set(manifest.get(table, {})) <= known, table


def test_enclave_size_is_a_power_of_two(manifest: dict[str, Any]) -> None:
    size_text = manifest["sgx"]["enclave_size"]
    size = int(size_text[:-1]) * {"M": 2**20, "G": 2**30}[size_text[-1]]

    assert size & (size - 1) == 0


def test_thread_slots_cover_the_pools_the_manifest_fixes(manifest: dict[str, Any]) -> None:
    argv, env = manifest["loader"]["argv"], manifest["loader"]["env"]
    rpc_workers = int(argv[argv.index("--rpc-workers") + 1])

    assert rpc_workers == 8
    assert "TOKIO_WORKER_THREADS" not in env  # no tokio runtime inside: dcap-qvl stays outside the enclave
    # 6 Python + 8 gRPC work threads + 16 + 3 gRPC core + 3 Gramine = 36 -> +25% = 45 -> 48
    assert counted_threads(rpc_workers=8) == 36
    assert manifest["sgx"]["max_threads"] == 48 >= counted_threads(rpc_workers=8) * 1.25


def test_isv_ids_come_from_the_parameters(manifest: dict[str, Any]) -> None:
    assert (manifest["sgx"]["isvprodid"], manifest["sgx"]["isvsvn"]) == (3, 2)


def test_entrypoint_and_fixed_argv_run_the_aggregator_module(manifest: dict[str, Any]) -> None:
    argv = manifest["loader"]["argv"]

    assert manifest["libos"]["entrypoint"] == "/opt/enclavefl/venv/bin/python3"
    assert argv[0] == "/opt/enclavefl/venv/bin/python3"
    assert argv[argv.index("--enclave-mib") + 1] == "2048"  # the node checks the job against the signed size
    assert argv[argv.index("-m") + 1] == AGGREGATOR_ENTRY_MODULE
    assert argv[argv.index("--listen") + 1] == "0.0.0.0:7443"
    assert argv[argv.index("--state") + 1] == "/enclavefl/state"
    assert "-I" in argv


def test_environment_is_fixed_and_leaves_hash_randomisation_on(manifest: dict[str, Any]) -> None:
    env = manifest["loader"]["env"]

    assert all(isinstance(value, str) for value in env.values())
    assert env["OMP_NUM_THREADS"] == "1"
    assert env["MALLOC_ARENA_MAX"] == str(MALLOC_ARENA_MAX)  # the node's mallopt uses the same constant
    assert "PYTHONHASHSEED" not in env


def test_node_state_lives_on_an_encrypted_mount_sealed_to_mrenclave(manifest: dict[str, Any]) -> None:
    encrypted = [m for m in manifest["fs"]["mounts"] if m.get("type") == "encrypted"]

    assert encrypted == [
        {"type": "encrypted", "path": "/enclavefl/state/", "uri": "file:state/", "key_name": "_sgx_mrenclave"}
    ]
    # first, or it would hide every mount below /tmp
    assert manifest["fs"]["mounts"][0] == {"type": "tmpfs", "path": "/tmp"}


def test_trusted_files_hold_no_training_plotting_or_cli_packages(manifest: dict[str, Any]) -> None:
    trusted = manifest["sgx"]["trusted_files"]
    components = {part for uri in trusted for part in uri.removeprefix("file:").split("/")}

    assert not components & set(FORBIDDEN_IN_ENCLAVE)


def test_trusted_files_are_the_given_release_paths_in_order(manifest: dict[str, Any]) -> None:
    assert manifest["sgx"]["trusted_files"] == [f"file:{path}" for path in TRUSTED]


def test_every_host_uri_is_relative_to_the_release(manifest: dict[str, Any]) -> None:
    sgx = manifest["sgx"]
    uris = [manifest["loader"]["entrypoint"]["uri"], *sgx["trusted_files"], *sgx["allowed_files"]]
    uris += [m["uri"] for m in manifest["fs"]["mounts"] if "uri" in m]

    assert all(u.startswith("file:") and not u.startswith("file:/") and ".." not in u for u in uris), uris


@pytest.mark.parametrize("bad", ["/usr/lib/python3.11/", "venv/../../etc/", "job/../..", 'job/"x'])
def test_a_trusted_path_outside_the_release_is_refused_when_rendering(bad: str) -> None:
    with pytest.raises(ConfigError, match="inside the release"):
        render_release_manifest(PARAMS, trusted=(*TRUSTED, bad))


def test_only_the_collateral_directory_is_allowed_and_it_is_mounted_where_the_argv_reads(
    manifest: dict[str, Any],
) -> None:
    argv = manifest["loader"]["argv"]
    mounts = {m["path"]: m for m in manifest["fs"]["mounts"]}

    assert manifest["sgx"]["allowed_files"] == ["file:collateral/"]
    assert mounts["/enclavefl/collateral"] == {"path": "/enclavefl/collateral", "uri": "file:collateral"}
    assert argv[argv.index("--collateral") + 1] == "/enclavefl/collateral/collateral.json"
    assert "--pccs-url" not in argv  # the enclave makes no outbound connection
    assert not [uri for uri in manifest["sgx"]["trusted_files"] if "/etc" in uri]


def test_the_runtime_is_mounted_from_the_release_at_the_paths_the_interpreter_was_built_for(
    manifest: dict[str, Any],
) -> None:
    mounts = {m["path"]: m.get("uri") for m in manifest["fs"]["mounts"]}

    assert mounts["/usr/lib/python3.11"] == "file:runtime/usr/lib/python3.11"
    assert mounts["/usr/lib/x86_64-linux-gnu"] == "file:runtime/usr/lib/x86_64-linux-gnu"
    assert mounts["/lib"] == "file:gramine/runtime/glibc"
    assert mounts["/opt/enclavefl/venv"] == "file:venv"
    assert manifest["loader"]["entrypoint"] == {"uri": "file:gramine/libsysdb.so"}


def test_rendered_manifest_passes_the_hardening_check(manifest: dict[str, Any]) -> None:
    check_rendered_manifest(manifest)


def test_allow_list_excludes_training_plotting_and_cli_distributions() -> None:
    excluded = {"torch", "matplotlib", "scikit-learn", "sklearn", "typer", "rich", "click", "pillow"}

    assert not excluded & {d.lower() for d in AGGREGATOR_DISTRIBUTIONS}
    assert {"enclavefl", "numpy", "grpcio", "protobuf", "cryptography"} <= set(AGGREGATOR_DISTRIBUTIONS)
    # the enclave verifies no quote and fetches no collateral: dcap-qvl (and its Rust runtime) stays outside
    assert "dcap-qvl" not in AGGREGATOR_DISTRIBUTIONS


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["enclavefl.enclave.worker", AGGREGATOR_ENTRY_MODULE])
def test_trusted_distributions_cover_everything_the_aggregator_imports(entry: str) -> None:
    if importlib.util.find_spec(entry) is None:
        pytest.skip(f"{entry} is not written yet")
    code = (
        f"import os, sys, sysconfig, {entry}\n"
        "sp = os.path.normpath(sysconfig.get_paths()['purelib'])\n"
        "files = {getattr(m, '__file__', None) or '' for m in list(sys.modules.values())}\n"
        "print('\\n'.join(sorted({os.path.relpath(f, sp).split(os.sep)[0] for f in files if f.startswith(sp)})))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    plan = plan_site_packages([d for d in AGGREGATOR_DISTRIBUTIONS if d != "enclavefl"])
    trusted_tops = {os.path.relpath(path, plan.site_packages).split(os.sep)[0] for path in plan.trusted}

    # Not in an enclave venv: setuptools' .pth (which the enclave cannot open, and site.py skips) and
    # grpcio-tools, a dev extra that grpc imports optionally.
    assert set(run.stdout.split()) - trusted_tops - {"_distutils_hack", "grpc_tools"} == set()


# The value shapes of Gramine's own schema (python/graminelibos/manifest_check.py, Gramine 1.8/1.9) for every key
# the template sets; gramine-manifest refuses a manifest that does not match them.
_MOUNT_KEYS = {
    "chroot": ({"path", "uri"}, {"type"}),
    "encrypted": ({"type", "path", "uri"}, {"key_name", "enable_recovery"}),
    "tmpfs": ({"type", "path"}, {"uri"}),
}


def test_rendered_manifest_matches_gramines_schema_shapes(manifest: dict[str, Any]) -> None:
    loader, sgx, sys_ = manifest["loader"], manifest["sgx"], manifest["sys"]

    for mount in manifest["fs"]["mounts"]:
        required, optional = _MOUNT_KEYS[mount.get("type", "chroot")]
        assert required <= set(mount) <= required | optional, mount
        assert all(isinstance(value, str) for value in mount.values()), mount
    assert isinstance(manifest["libos"]["entrypoint"], str) and set(manifest["loader"]["entrypoint"]) == {"uri"}
    assert isinstance(loader["argv"], list) and all(isinstance(a, str) for a in loader["argv"])
    assert all(isinstance(v, str) or (isinstance(v, dict) and set(v) == {"value"}) for v in loader["env"].values())
    assert loader["log_level"] in ("none", "error", "warning", "debug", "trace", "all")
    for key in ("trusted_files", "allowed_files"):
        assert all(isinstance(entry, str) and entry.startswith("file:") for entry in sgx[key]), key
    for key in ("debug", "edmm_enable"):
        assert isinstance(sgx[key], bool)
    for key in ("max_threads", "isvprodid", "isvsvn"):
        assert isinstance(sgx[key], int) and not isinstance(sgx[key], bool)
    assert isinstance(sgx["enclave_size"], str) and isinstance(sys_["stack"]["size"], str)
    assert sgx["remote_attestation"] in ("none", "dcap") and sgx["file_check_policy"] in ("strict", "allow_all_but_log")
    for key in ("disallow_subprocesses", "enable_sigterm_injection", "enable_extra_runtime_domain_names_conf"):
        assert isinstance(sys_[key], bool)


def test_rendered_manifest_gives_the_aggregator_what_it_needs(manifest: dict[str, Any]) -> None:
    mounts = {m["path"]: m for m in manifest["fs"]["mounts"]}
    argv = manifest["loader"]["argv"]
    trusted = manifest["sgx"]["trusted_files"]

    # every path on the command line is inside a mount of the right kind
    assert argv[argv.index("--job") + 1].startswith("/enclavefl/job/") and "/enclavefl/job" in mounts
    assert mounts["/enclavefl/state/"]["type"] == "encrypted"
    assert argv[argv.index("--collateral") + 1].startswith("/enclavefl/collateral/")
    # the interpreter, its pyvenv.cfg, the stdlib and the runtime are measured; the job dir is measured
    assert {"file:venv/bin/python3", "file:venv/pyvenv.cfg", "file:job/"} <= set(trusted)
    # the library path the loader searches is mounted, and nothing under /etc is
    for directory in manifest["loader"]["env"]["LD_LIBRARY_PATH"].split(":"):
        assert directory in mounts, directory
    assert not [path for path in mounts if path.startswith("/etc")]
    assert manifest["sys"]["enable_extra_runtime_domain_names_conf"] is False
    assert manifest["sgx"]["edmm_enable"] is False and manifest["sys"]["disallow_subprocesses"] is True
