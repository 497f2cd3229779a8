"""A data owner's attestation policy: which enclaves, platforms and collateral it accepts.

The TCB-status opt-ins reproduce Gramine's RA-TLS flags one for one (tee-brief §3.3):

    status                                 accepted when
    UpToDate                               always
    SWHardeningNeeded                      allow_sw_hardening_needed
    ConfigurationNeeded                    allow_hw_config_needed
    ConfigurationAndSWHardeningNeeded      allow_hw_config_needed AND allow_sw_hardening_needed
    OutOfDate, TDRelaunchAdvised           allow_outdated_tcb_insecure
    OutOfDateConfigurationNeeded,
    TDRelaunchAdvisedConfigurationNeeded   allow_outdated_tcb_insecure AND allow_hw_config_needed
    Revoked, anything else                 never

Advisories (stricter than RA-TLS, which ignores them): once the status is accepted, every advisory
ID the platform is affected by must be listed in `accept_advisories`, else AdvisoryRefused. Owners accept
a named advisory explicitly (`enclavefl enclave measure --accept-advisory INTEL-SA-00615` records it with
allow_sw_hardening_needed): a platform affected by exactly the named advisories passes, one affected by any
other does not.

Collateral age: by default a policy refuses collateral issued more than 7 days before the verifier's clock
(DEFAULT_MAX_COLLATERAL_AGE_SECONDS), although Intel's collateral stays valid for about 30 days: a host that
keeps serving old TCB info would otherwise hide a TCB recovery for weeks. The host agent refreshes daily.

Builder methods return a new policy; those that weaken a guarantee say `insecure` or
`allow_simulation` and warn with InsecurePolicyWarning.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509

from enclavefl.errors import (
    AdvisoryRefused,
    CollateralTooOld,
    DebugEnclaveRefused,
    IsvProdIdMismatch,
    IsvSvnTooLow,
    MrEnclaveMismatch,
    MrSignerMismatch,
    MrTdMismatch,
    PolicyConfigError,
    SimulationNotAllowed,
    TcbStatusRefused,
)
from enclavefl.tee.evidence import TeeKind
from enclavefl.tee.verify._toml import TomlValue, toml_value
from enclavefl.tee.verify.verified import VerifiedEnclave

_MEASUREMENT_SIZE = 32
DEFAULT_MAX_COLLATERAL_AGE_SECONDS = 7 * 24 * 3600
_ADVISORY_RE = re.compile(r"^INTEL-SA-[0-9]{5}$")
_MR_TD_SIZE = 48
_U16_MAX = 0xFFFF

# status -> the opt-ins it needs (all of them); statuses not listed are never accepted.
_STATUS_NEEDS: dict[str, frozenset[str]] = {
    "UpToDate": frozenset(),
    "SWHardeningNeeded": frozenset({"sw_hardening"}),
    "ConfigurationNeeded": frozenset({"hw_config"}),
    "ConfigurationAndSWHardeningNeeded": frozenset({"hw_config", "sw_hardening"}),
    "OutOfDate": frozenset({"outdated"}),
    "OutOfDateConfigurationNeeded": frozenset({"outdated", "hw_config"}),
    "TDRelaunchAdvised": frozenset({"outdated"}),
    "TDRelaunchAdvisedConfigurationNeeded": frozenset({"outdated", "hw_config"}),
}
_OPT_IN_NAMES = {
    "sw_hardening": "allow_sw_hardening_needed",
    "hw_config": "allow_hw_config_needed",
    "outdated": "allow_outdated_tcb_insecure",
}


class InsecurePolicyWarning(UserWarning):
    """A policy was weakened (debug enclaves, outdated TCB, any measurement, simulation)."""


def _warn(what: str) -> None:
    warnings.warn(f"INSECURE attestation policy: {what}", InsecurePolicyWarning, stacklevel=3)


def _measurement(value: str | bytes, name: str, size: int = _MEASUREMENT_SIZE) -> bytes:
    if isinstance(value, str):
        try:
            raw = bytes.fromhex(value)
        except ValueError as exc:
            raise PolicyConfigError(f"{name}: {value!r} is not hex") from exc
    else:
        raw = bytes(value)
    if len(raw) != size:
        raise PolicyConfigError(f"{name}: expected {size} bytes, got {len(raw)}")
    return raw


def advisory_id(text: str) -> str:
    """An Intel security advisory ID as TCB info names it ("INTEL-SA-00615"); PolicyConfigError otherwise."""
    value = text.strip().upper() if isinstance(text, str) else text
    if not isinstance(value, str) or not _ADVISORY_RE.match(value):
        raise PolicyConfigError(f"advisory {text!r}: expected an Intel advisory ID like INTEL-SA-00615")
    return value


def _u16(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U16_MAX:
        raise PolicyConfigError(f"{name}: expected an integer in 0..{_U16_MAX}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustDomain:
    """One TDX trust domain a policy accepts: the firmware (MRTD) and what it measured at boot (RTMR0-3)."""

    mr_td: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    mr_config_id: bytes | None = None  # compared only when set

    def differences(self, verified: VerifiedEnclave) -> list[str]:
        names = [f"RTMR{i}" for i, r in enumerate(self.rtmrs) if verified.rtmrs is None or verified.rtmrs[i] != r]
        if self.mr_config_id is not None and verified.mr_config_id != self.mr_config_id:
            names.append("MRCONFIGID")
        return names

    def matches(self, verified: VerifiedEnclave) -> bool:
        return verified.mr_td == self.mr_td and not self.differences(verified)

    def to_toml(self) -> dict[str, TomlValue]:
        entry: dict[str, TomlValue] = {"mr_td": self.mr_td.hex(), "rtmr": [r.hex() for r in self.rtmrs]}
        if self.mr_config_id is not None:
            entry["mr_config_id"] = self.mr_config_id.hex()
        return entry


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestationPolicy:
    """What a verifier accepts. Start from `AttestationPolicy.strict()` and add measurements."""

    allowed_mrenclaves: frozenset[bytes] = frozenset()
    allowed_mrsigners: frozenset[bytes] = frozenset()
    allowed_tds: frozenset[TrustDomain] = frozenset()  # TDX: firmware measurement AND what it loaded
    required_isv_prod_id: int | None = None
    minimum_isv_svn: int | None = None
    accepts_any_measurement_insecure: bool = False
    accepts_debug_enclave_insecure: bool = False
    accepts_outdated_tcb_insecure: bool = False
    accepts_hw_config_needed: bool = False
    accepts_sw_hardening_needed: bool = False
    accepted_advisories: frozenset[str] = frozenset()
    max_collateral_age_seconds: int | None = DEFAULT_MAX_COLLATERAL_AGE_SECONDS
    simulation_root_ca_der: bytes | None = None

    # --- builder -------------------------------------------------------------------------------
    @classmethod
    def strict(cls) -> AttestationPolicy:
        """Accepts nothing until MRENCLAVE or MRSIGNER values are added; UpToDate TCB only."""
        return cls()

    def allow_mrenclave(self, mrenclave: str | bytes) -> AttestationPolicy:
        value = _measurement(mrenclave, "mrenclave")
        return dataclasses.replace(self, allowed_mrenclaves=self.allowed_mrenclaves | {value})

    def allow_mrsigner(self, mrsigner: str | bytes) -> AttestationPolicy:
        value = _measurement(mrsigner, "mrsigner")
        return dataclasses.replace(self, allowed_mrsigners=self.allowed_mrsigners | {value})

    def allow_td(
        self, *, mr_td: str | bytes, rtmrs: Sequence[str | bytes], mr_config_id: str | bytes | None = None
    ) -> AttestationPolicy:
        """Accept TDX quotes of exactly this trust domain: MRTD, all four RTMRs and (when given) MRCONFIGID.

        MRTD alone measures only the TD's initial firmware image: every guest that firmware boots has it, so an
        MRTD-only entry would accept any TD on that firmware. RTMR0-3 measure what it loaded (configuration,
        kernel, command line, application). SGX allow-lists never match a TDX quote, nor this an SGX one.
        """
        if len(rtmrs) != 4:
            raise PolicyConfigError(f"rtmr: give all four RTMR values (RTMR0-3), got {len(rtmrs)}")
        domain = TrustDomain(
            mr_td=_measurement(mr_td, "mr_td", _MR_TD_SIZE),
            rtmrs=tuple(_measurement(r, f"rtmr{i}", _MR_TD_SIZE) for i, r in enumerate(rtmrs)),  # type: ignore[arg-type]
            mr_config_id=None if mr_config_id is None else _measurement(mr_config_id, "mr_config_id", _MR_TD_SIZE),
        )
        return dataclasses.replace(self, allowed_tds=self.allowed_tds | {domain})

    def require_isv_prod_id(self, isv_prod_id: int) -> AttestationPolicy:
        return dataclasses.replace(self, required_isv_prod_id=_u16(isv_prod_id, "isv_prod_id"))

    def min_isv_svn(self, isv_svn: int) -> AttestationPolicy:
        return dataclasses.replace(self, minimum_isv_svn=_u16(isv_svn, "min_isv_svn"))

    def allow_any_measurement_insecure(self) -> AttestationPolicy:
        _warn("any MRENCLAVE/MRSIGNER is accepted")
        return dataclasses.replace(self, accepts_any_measurement_insecure=True)

    def allow_debug_enclave_insecure(self) -> AttestationPolicy:
        _warn("debug enclaves (readable by the host) are accepted")
        return dataclasses.replace(self, accepts_debug_enclave_insecure=True)

    def allow_outdated_tcb_insecure(self) -> AttestationPolicy:
        _warn("platforms with an out-of-date TCB are accepted")
        return dataclasses.replace(self, accepts_outdated_tcb_insecure=True)

    def allow_hw_config_needed(self) -> AttestationPolicy:
        return dataclasses.replace(self, accepts_hw_config_needed=True)

    def allow_sw_hardening_needed(self) -> AttestationPolicy:
        return dataclasses.replace(self, accepts_sw_hardening_needed=True)

    def accept_advisories(self, advisory_ids: Iterable[str]) -> AttestationPolicy:
        if isinstance(advisory_ids, str):
            raise PolicyConfigError(f"accepted_advisories: expected a list of advisory IDs, got {advisory_ids!r}")
        ids = frozenset(advisory_id(i) for i in advisory_ids)
        return dataclasses.replace(self, accepted_advisories=self.accepted_advisories | ids)

    def max_collateral_age(self, seconds: int) -> AttestationPolicy:
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
            raise PolicyConfigError(f"max_collateral_age_seconds: expected a positive integer, got {seconds!r}")
        return dataclasses.replace(self, max_collateral_age_seconds=seconds)

    def allow_simulation(self, root_ca_der: bytes) -> AttestationPolicy:
        """Accept INSECURE simulated evidence chaining to this simulated platform's root CA."""
        try:
            x509.load_der_x509_certificate(root_ca_der)
        except ValueError as exc:
            raise PolicyConfigError("simulation_root_ca: not a DER X.509 certificate") from exc
        _warn("simulated evidence (no hardware guarantee at all) is accepted")
        return dataclasses.replace(self, simulation_root_ca_der=bytes(root_ca_der))

    @property
    def simulation_allowed(self) -> bool:
        return self.simulation_root_ca_der is not None

    # --- checking ------------------------------------------------------------------------------
    def require_usable(self) -> None:
        """Raise PolicyConfigError if this policy would trust any enclave by omission."""
        if not (
            self.allowed_mrenclaves
            or self.allowed_mrsigners
            or self.allowed_tds
            or self.accepts_any_measurement_insecure
        ):
            raise PolicyConfigError(
                "policy names no MRENCLAVE, MRSIGNER or trust domain: refuse to trust any enclave "
                "(add allow_mrenclave/allow_mrsigner/allow_mr_td, or allow_any_measurement_insecure)"
            )

    def check(self, verified: VerifiedEnclave, *, now: int) -> None:
        """Raise the precise PolicyViolation leaf unless this policy accepts the verified claims."""
        self.require_usable()
        if verified.simulated and not self.simulation_allowed:
            raise SimulationNotAllowed(
                "evidence comes from the INSECURE simulation backend; this policy does not allow_simulation"
            )
        if verified.debug and not self.accepts_debug_enclave_insecure:
            raise DebugEnclaveRefused("the enclave runs in debug mode: the host can read its memory")
        self._check_measurements(verified)
        self._check_tcb(verified)
        self._check_collateral_age(verified, now=now)

    def _check_measurements(self, verified: VerifiedEnclave) -> None:
        if verified.tee is TeeKind.TDX:
            self._check_trust_domain(verified)
            return
        if not (self.allowed_mrenclaves or self.allowed_mrsigners or self.accepts_any_measurement_insecure):
            raise MrEnclaveMismatch("SGX quote, but the policy names only TDX measurements (MRTD)")
        if self.allowed_mrenclaves and verified.mrenclave not in self.allowed_mrenclaves:
            shown = verified.mrenclave.hex() if verified.mrenclave is not None else f"none ({verified.tee})"
            raise MrEnclaveMismatch(f"MRENCLAVE {shown} is not in the policy's allow-list")
        if self.allowed_mrsigners and verified.mrsigner not in self.allowed_mrsigners:
            shown = verified.mrsigner.hex() if verified.mrsigner is not None else f"none ({verified.tee})"
            raise MrSignerMismatch(f"MRSIGNER {shown} is not in the policy's allow-list")
        if self.required_isv_prod_id is not None and verified.isv_prod_id != self.required_isv_prod_id:
            raise IsvProdIdMismatch(
                f"ISVPRODID {verified.isv_prod_id} differs from the required {self.required_isv_prod_id}"
            )
        if self.minimum_isv_svn is not None and (verified.isv_svn is None or verified.isv_svn < self.minimum_isv_svn):
            raise IsvSvnTooLow(f"ISVSVN {verified.isv_svn} is below the policy's minimum {self.minimum_isv_svn}")

    def _check_trust_domain(self, verified: VerifiedEnclave) -> None:
        if self.accepts_any_measurement_insecure and not self.allowed_tds:
            return
        shown = verified.mr_td.hex() if verified.mr_td is not None else "none"
        if not self.allowed_tds:
            raise MrTdMismatch(f"TDX quote (MRTD {shown}), but the policy names no trust domain (allow_td)")
        same_firmware = [td for td in self.allowed_tds if td.mr_td == verified.mr_td]
        if not same_firmware:
            raise MrTdMismatch(f"MRTD {shown} is not in the policy's allow-list")
        if not any(td.matches(verified) for td in same_firmware):
            differing = sorted({name for td in same_firmware for name in td.differences(verified)})
            raise MrTdMismatch(
                f"MRTD {shown} is allowed, but {', '.join(differing)} differ from every allowed trust domain on it: "
                "the same firmware booted other code or configuration"
            )

    def _check_tcb(self, verified: VerifiedEnclave) -> None:
        status = verified.tcb_status
        needs = _STATUS_NEEDS.get(status)
        if needs is None:
            raise TcbStatusRefused(f"TCB status {status!r} is never accepted")
        granted = {
            name
            for name, on in (
                ("sw_hardening", self.accepts_sw_hardening_needed),
                ("hw_config", self.accepts_hw_config_needed),
                ("outdated", self.accepts_outdated_tcb_insecure),
            )
            if on
        }
        missing = sorted(_OPT_IN_NAMES[n] for n in needs - granted)
        if missing:
            raise TcbStatusRefused(f"TCB status {status} is refused; accepting it needs {' + '.join(missing)}")
        unaccepted = [a for a in verified.advisory_ids if a not in self.accepted_advisories]
        if unaccepted:
            raise AdvisoryRefused(
                f"platform (TCB {status}) is affected by advisories the policy does not accept: "
                + ", ".join(unaccepted)
            )

    def _check_collateral_age(self, verified: VerifiedEnclave, *, now: int) -> None:
        limit = self.max_collateral_age_seconds
        if limit is None:
            return
        issued = verified.collateral_issued_at
        if issued is None:
            raise CollateralTooOld("collateral issue date unknown; the policy sets a maximum age")
        if now - issued > limit:
            raise CollateralTooOld(f"collateral issued {now - issued} s before now; policy allows {limit} s")

    # --- TOML ----------------------------------------------------------------------------------
    def to_toml(self, *, simulation_root_ca: str | None = None) -> str:
        """This policy in `load_policy`'s TOML form; `simulation_root_ca` is the root's path if allowed."""
        if self.simulation_allowed and simulation_root_ca is None:
            raise PolicyConfigError("simulation_root_ca: give the path to write for the simulation root")
        items: list[tuple[str, TomlValue]] = [
            ("mrenclave", sorted(m.hex() for m in self.allowed_mrenclaves)),
            ("mrsigner", sorted(m.hex() for m in self.allowed_mrsigners)),
        ]
        if self.allowed_tds:
            ordered = sorted(self.allowed_tds, key=lambda t: (t.mr_td, t.rtmrs))
            items.append(("td", [td.to_toml() for td in ordered]))
        if self.required_isv_prod_id is not None:
            items.append(("isv_prod_id", self.required_isv_prod_id))
        if self.minimum_isv_svn is not None:
            items.append(("min_isv_svn", self.minimum_isv_svn))
        items += [
            ("allow_any_measurement_insecure", self.accepts_any_measurement_insecure),
            ("allow_debug_enclave_insecure", self.accepts_debug_enclave_insecure),
            ("allow_outdated_tcb_insecure", self.accepts_outdated_tcb_insecure),
            ("allow_hw_config_needed", self.accepts_hw_config_needed),
            ("allow_sw_hardening_needed", self.accepts_sw_hardening_needed),
            ("accepted_advisories", sorted(self.accepted_advisories)),
        ]
        if self.max_collateral_age_seconds is not None:
            items.append(("max_collateral_age_seconds", self.max_collateral_age_seconds))
        items.append(("allow_simulation", self.simulation_allowed))
        if self.simulation_allowed and simulation_root_ca is not None:
            items.append(("simulation_root_ca", simulation_root_ca))
        return "".join(f"{key} = {toml_value(value)}\n" for key, value in items)
