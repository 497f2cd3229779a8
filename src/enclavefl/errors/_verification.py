"""Attestation verification's errors: raised where a quote is checked (owners, auditors), never inside."""

from __future__ import annotations

from enclavefl.errors._common import AttestationError, TeeUnavailable


class QuoteVerificationError(AttestationError):
    """dcap-qvl refused the quote or its collateral."""


class CollateralExpired(QuoteVerificationError):
    """The collateral (TCB info, QE identity or a CRL) is past its nextUpdate at `now`."""


class CollateralFromTheFuture(QuoteVerificationError):
    """The TCB info or QE identity is dated later than `now` plus the tolerated clock skew (tee.verify)."""


class SimulationRootMismatch(QuoteVerificationError):
    """A simulated quote's certificate chain comes from another simulated platform than the policy's root."""


class PolicyViolation(AttestationError):
    """The quote verified but the verifier's policy refuses it."""


class MeasurementMismatch(PolicyViolation):
    """The enclave's identity is not one the policy allows."""


class MrEnclaveMismatch(MeasurementMismatch):
    """MRENCLAVE is not in the policy's allow-list."""


class MrSignerMismatch(MeasurementMismatch):
    """MRSIGNER is not in the policy's allow-list."""


class MrTdMismatch(MeasurementMismatch):
    """A TDX quote's MRTD is not in the policy's allow-list (or the policy names no MRTD)."""


class IsvProdIdMismatch(MeasurementMismatch):
    """ISV product id differs from the policy's."""


class IsvSvnTooLow(PolicyViolation):
    """ISV SVN is below the policy's minimum."""


class DebugEnclaveRefused(PolicyViolation):
    """The enclave runs in debug mode."""


class TcbStatusRefused(PolicyViolation):
    """The platform's TCB status is not accepted by the policy."""


class AdvisoryRefused(PolicyViolation):
    """The platform is affected by an advisory the policy does not accept."""


class CollateralTooOld(PolicyViolation):
    """The collateral is older than the policy's maximum age."""


class SimulationNotAllowed(PolicyViolation):
    """Simulated evidence was presented to a policy without allow_simulation."""


class PlatformQuoteMissing(TeeUnavailable):
    """The host agent found no "platform-quote" line (or quote file) yet: it cannot know what to fetch."""


class QuoteFormatError(AttestationError):
    """The bytes are not a quote (or evidence bundle) we understand."""


class CertificateMismatch(AttestationError):
    """The peer presented a certificate other than the attested one."""


class ReportDataMismatch(AttestationError):
    """The quote's report data does not bind this TLS key, job digest and nonce."""


class JobDigestMismatch(ReportDataMismatch):
    """The node runs a job other than the one the data owner agreed to."""


class TlsKeyNotBound(ReportDataMismatch):
    """The quote binds a TLS key other than the one the channel presents."""


class NonceMismatch(ReportDataMismatch):
    """The evidence answers another nonce: a replayed or stale bundle."""


__all__ = [
    "AdvisoryRefused",
    "CertificateMismatch",
    "CollateralExpired",
    "CollateralFromTheFuture",
    "CollateralTooOld",
    "DebugEnclaveRefused",
    "IsvProdIdMismatch",
    "IsvSvnTooLow",
    "JobDigestMismatch",
    "MeasurementMismatch",
    "MrEnclaveMismatch",
    "MrSignerMismatch",
    "MrTdMismatch",
    "NonceMismatch",
    "PlatformQuoteMissing",
    "PolicyViolation",
    "QuoteFormatError",
    "QuoteVerificationError",
    "ReportDataMismatch",
    "SimulationNotAllowed",
    "SimulationRootMismatch",
    "TcbStatusRefused",
    "TlsKeyNotBound",
]

for _name in __all__:
    globals()[_name].__module__ = "enclavefl.errors"  # the public path, in tracebacks and help()
