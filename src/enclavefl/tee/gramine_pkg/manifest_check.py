"""The hardening check of a rendered aggregator manifest: what `enclavefl enclave check-manifest` refuses.

    check_rendered_manifest(tomllib.loads(Path("aggregator.manifest").read_text()))   # raises or returns None

Refused: a debug enclave, insecure__ keys, non-DCAP attestation, a non-strict file policy, stats or profiling, a
size that is not a power of two, too few thread slots for the configured pools, verbose logging, a command line or
environment the host can change, untrusted shared memory, node state under any key but _sgx_mrenclave, allowed
files other than the collateral directory, and any host URI outside the release directory (absolute or with
".."): what the enclave trusts must come from the release, never from the host's /usr.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enclavefl.errors import ConfigError, ManifestHardeningError
from enclavefl.tee.gramine_pkg.manifest import (
    ALLOWED_LOG_LEVELS,
    COLLATERAL_MOUNT,
    MIN_MAX_THREADS,
    check_release_path,
    parse_enclave_size,
)
from enclavefl.tee.gramine_pkg.threads import required_max_threads
from enclavefl.tee.inside.seal import STATE_SEALING_KEY


def check_rendered_manifest(manifest: Mapping[str, Any]) -> None:
    """Raise ManifestHardeningError if a rendered manifest (parsed TOML) weakens a guarantee."""
    insecure = sorted(_keys_containing(manifest, "insecure__"))
    if insecure:
        raise ManifestHardeningError(f"insecure manifest keys present: {insecure}")
    sgx = _table(manifest, "sgx")
    loader = _table(manifest, "loader")
    if sgx.get("debug", False) is not False:
        raise ManifestHardeningError("sgx.debug must be false: a debug enclave's memory is readable by the host")
    if sgx.get("remote_attestation") != "dcap":
        raise ManifestHardeningError('sgx.remote_attestation must be "dcap" or the enclave cannot be attested')
    if sgx.get("file_check_policy", "strict") != "strict":
        raise ManifestHardeningError('sgx.file_check_policy must be "strict": other policies open unknown files')
    if sgx.get("enable_stats", False) or _table(sgx, "profile").get("enable", "none") != "none":
        raise ManifestHardeningError("SGX stats and profiling are debug-only features")
    _check_allowed_files(sgx.get("allowed_files", []), _table(manifest, "fs").get("mounts", []))
    try:
        parse_enclave_size(str(sgx.get("enclave_size", "")))
    except ConfigError as exc:
        raise ManifestHardeningError(f"sgx.enclave_size: {exc}") from exc
    if int(sgx.get("max_threads", 0)) < MIN_MAX_THREADS:
        raise ManifestHardeningError(f"sgx.max_threads must be >= {MIN_MAX_THREADS}")
    _check_thread_slots(int(sgx.get("max_threads", 0)), loader)
    if loader.get("log_level", "error") not in ALLOWED_LOG_LEVELS:
        raise ManifestHardeningError(f"loader.log_level {loader.get('log_level')!r} leaks enclave internals")
    if not loader.get("argv") or "argv_src_file" in loader or "env_src_file" in loader:
        raise ManifestHardeningError("the command line and environment must be fixed in the manifest")
    for name, value in _table(loader, "env").items():
        if isinstance(value, Mapping) and value.get("passthrough"):
            raise ManifestHardeningError(f"loader.env.{name} is passed through from the host")
    mounts = _table(manifest, "fs").get("mounts", [])
    if any(isinstance(m, Mapping) and m.get("type") == "untrusted_shm" for m in mounts):
        raise ManifestHardeningError("untrusted shared memory mounts expose enclave data to the host")
    encrypted = [m for m in mounts if isinstance(m, Mapping) and m.get("type") == "encrypted"]
    if not encrypted:
        raise ManifestHardeningError("the node state needs an encrypted mount")
    _check_uris_stay_in_the_release(manifest)
    for mount in encrypted:
        # Any other key opens to more than this build: _sgx_mrsigner to every enclave the signing key's holder
        # (the operator) signs, "default" and provisioned keys to whoever provisions them (issue 10 §3).
        if mount.get("key_name") != STATE_SEALING_KEY:
            raise ManifestHardeningError(
                f"encrypted mount {mount.get('path')!r} uses key {mount.get('key_name', 'default')!r}: it must be "
                f"{STATE_SEALING_KEY!r}, or another enclave signed with the same key could read the node's state"
            )


def _check_allowed_files(allowed: object, mounts: object) -> None:
    """Only the collateral directory may be an allowed (unmeasured, unprotected) file: Intel signs its content
    and verifiers check it, so the host can at worst make attestation fail. Anything else must be trusted."""
    if not allowed:
        return
    collateral_uris = [
        str(m.get("uri", "")).rstrip("/") + "/"
        for m in (mounts if isinstance(mounts, list) else [])
        if isinstance(m, Mapping)
        and str(m.get("path", "")).rstrip("/") == COLLATERAL_MOUNT
        and m.get("type", "chroot") == "chroot"
    ]
    if not isinstance(allowed, list) or any(str(uri) not in collateral_uris for uri in allowed):
        raise ManifestHardeningError(
            f"sgx.allowed_files may hold only the collateral directory mounted at {COLLATERAL_MOUNT} "
            f"({collateral_uris or 'not mounted'}), got {allowed}"
        )


def _check_thread_slots(max_threads: int, loader: Mapping[str, Any]) -> None:
    argv = loader.get("argv", [])
    if not isinstance(argv, list) or "--rpc-workers" not in argv:
        return  # not the aggregator's command line: nothing to derive from
    try:
        rpc_workers = int(argv[argv.index("--rpc-workers") + 1])
    except (IndexError, ValueError) as exc:
        raise ManifestHardeningError(f"--rpc-workers must be an integer: {exc}") from exc
    needed = required_max_threads(rpc_workers=rpc_workers)
    if max_threads < needed:
        raise ManifestHardeningError(
            f"sgx.max_threads = {max_threads} is below the {needed} that {rpc_workers} gRPC work threads need "
            "(enclavefl.tee.gramine_pkg.threads)"
        )


def _check_uris_stay_in_the_release(manifest: Mapping[str, Any]) -> None:
    """Every host URI must be a relative path inside the release: the node runs in the release directory, so the
    enclave then reads its interpreter, libraries and stdlib from the release, whatever the host's /usr holds."""
    sgx, fs, loader = _table(manifest, "sgx"), _table(manifest, "fs"), _table(manifest, "loader")
    uris: list[tuple[str, object]] = [("loader.entrypoint.uri", _table(loader, "entrypoint").get("uri"))]
    uris += [
        (f"fs.mounts[{m.get('path')!r}]", m.get("uri"))
        for m in fs.get("mounts", [])
        if isinstance(m, Mapping) and m.get("type", "chroot") != "tmpfs"
    ]
    for key in ("trusted_files", "allowed_files"):
        for entry in sgx.get(key, []):
            uris.append((f"sgx.{key}", entry.get("uri") if isinstance(entry, Mapping) else entry))
    for where, uri in uris:
        if not isinstance(uri, str) or not uri.startswith("file:"):
            raise ManifestHardeningError(f"{where}: {uri!r} is not a file: URI")
        try:
            check_release_path(where, uri.removeprefix("file:").rstrip("/") or "/")
        except ConfigError as exc:
            raise ManifestHardeningError(
                f"{where}: {uri!r} is outside the release directory: the enclave would trust a host file "
                "(an unrelated host update would change MRENCLAVE or stop the node)"
            ) from exc


def _table(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key, {})
    if not isinstance(value, Mapping):
        raise ManifestHardeningError(f"manifest key {key!r} must be a table")
    return value


def _keys_containing(node: object, needle: str, prefix: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            path = f"{prefix}{key}"
            if needle in str(key):
                found.append(path)
            found.extend(_keys_containing(value, needle, path + "."))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found.extend(_keys_containing(item, needle, f"{prefix}[{index}]."))
    return found
