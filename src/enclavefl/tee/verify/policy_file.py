"""A policy's file form: `load_policy(path)` reads what `AttestationPolicy.to_toml()` writes.

policy = load_policy("policy.toml")     # PolicyConfigError names the key that is wrong
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from enclavefl.errors import PolicyConfigError
from enclavefl.tee.verify.policy import AttestationPolicy

_KEY_TYPES: dict[str, type] = {
    "mrenclave": list,
    "mrsigner": list,
    "td": list,
    "isv_prod_id": int,
    "min_isv_svn": int,
    "allow_any_measurement_insecure": bool,
    "allow_debug_enclave_insecure": bool,
    "allow_outdated_tcb_insecure": bool,
    "allow_hw_config_needed": bool,
    "allow_sw_hardening_needed": bool,
    "accepted_advisories": list,
    "max_collateral_age_seconds": int,
    "allow_simulation": bool,
    "simulation_root_ca": str,
}


def load_policy(path: str | Path) -> AttestationPolicy:
    """Read a policy TOML file; unknown keys or wrong types raise PolicyConfigError naming the key."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyConfigError(f"{path}: cannot read policy: {exc}") from exc
    for key, value in doc.items():
        expected = _KEY_TYPES.get(key)
        if expected is None:
            raise PolicyConfigError(f"{path}: unknown key {key!r} (known: {', '.join(sorted(_KEY_TYPES))})")
        wrong_bool = isinstance(value, bool) and expected is not bool
        if wrong_bool or not isinstance(value, expected):
            raise PolicyConfigError(f"{path}: key {key!r} must be a {expected.__name__}, got {value!r}")
        if key != "td" and isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise PolicyConfigError(f"{path}: key {key!r} must be a list of strings, got {value!r}")

    policy = AttestationPolicy.strict()
    for hex_value in doc.get("mrenclave", []):
        policy = policy.allow_mrenclave(hex_value)
    for hex_value in doc.get("mrsigner", []):
        policy = policy.allow_mrsigner(hex_value)
    for entry in doc.get("td", []):
        mr_td, rtmrs, mr_config_id = _td_entry(entry, path)
        policy = policy.allow_td(mr_td=mr_td, rtmrs=rtmrs, mr_config_id=mr_config_id)
    if "isv_prod_id" in doc:
        policy = policy.require_isv_prod_id(doc["isv_prod_id"])
    if "min_isv_svn" in doc:
        policy = policy.min_isv_svn(doc["min_isv_svn"])
    if doc.get("allow_any_measurement_insecure", False):
        policy = policy.allow_any_measurement_insecure()
    if doc.get("allow_debug_enclave_insecure", False):
        policy = policy.allow_debug_enclave_insecure()
    if doc.get("allow_outdated_tcb_insecure", False):
        policy = policy.allow_outdated_tcb_insecure()
    if doc.get("allow_hw_config_needed", False):
        policy = policy.allow_hw_config_needed()
    if doc.get("allow_sw_hardening_needed", False):
        policy = policy.allow_sw_hardening_needed()
    if "accepted_advisories" in doc:
        policy = policy.accept_advisories(doc["accepted_advisories"])
    if "max_collateral_age_seconds" in doc:
        policy = policy.max_collateral_age(doc["max_collateral_age_seconds"])
    allow_simulation = doc.get("allow_simulation", False)
    root_path = doc.get("simulation_root_ca")
    if allow_simulation != (root_path is not None):
        raise PolicyConfigError(
            f"{path}: keys 'allow_simulation' and 'simulation_root_ca' go together "
            "(allow_simulation = true needs the simulated platform's root CA, and only then)"
        )
    if root_path is not None:
        policy = policy.allow_simulation(_read_root_ca(path.parent / root_path))
    return policy


def _read_root_ca(path: Path) -> bytes:
    """A root CA file, DER or PEM, as DER bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyConfigError(f"simulation_root_ca: cannot read {path}: {exc}") from exc
    if b"-----BEGIN CERTIFICATE-----" in data:
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError as exc:
            raise PolicyConfigError(f"simulation_root_ca: {path} is not a PEM certificate") from exc
        return cert.public_bytes(serialization.Encoding.DER)
    return data


def _td_entry(entry: object, path: Path) -> tuple[str, list[str], str | None]:
    """A `td` entry of a policy file as (mr_td, rtmrs, mr_config_id); PolicyConfigError names what is wrong."""
    if not isinstance(entry, dict) or set(entry) - {"mr_td", "rtmr", "mr_config_id"} or "mr_td" not in entry:
        raise PolicyConfigError(f"{path}: each td entry needs mr_td and rtmr (optionally mr_config_id): {entry!r}")
    mr_td, rtmr, mr_config_id = entry["mr_td"], entry.get("rtmr"), entry.get("mr_config_id")
    if not isinstance(rtmr, list) or not all(isinstance(r, str) for r in rtmr):
        raise PolicyConfigError(f"{path}: td rtmr must list the four RTMR values as hex strings, got {rtmr!r}")
    if not isinstance(mr_td, str) or not (mr_config_id is None or isinstance(mr_config_id, str)):
        raise PolicyConfigError(f"{path}: td mr_td and mr_config_id are hex strings: {entry!r}")
    return mr_td, rtmr, mr_config_id
