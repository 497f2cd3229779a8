"""The one exception tree of enclavefl: `help(enclavefl.errors)` draws it (errors/_tree.py, read on first use).

Every check that guards a trust decision raises one of these; none returns a bool.
Catch `EnclaveFLError` for "anything enclavefl refused", or a leaf for one precise reason.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

from enclavefl.errors import _common
from enclavefl.errors._common import *  # noqa: F403  (the errors the enclave raises: loaded at once)

if TYPE_CHECKING:  # the others load on first use: the enclave's import closure holds only the errors it raises
    from enclavefl.errors._outside import *  # noqa: F403
    from enclavefl.errors._verification import *  # noqa: F403


class _Errors(types.ModuleType):
    @property
    def __doc__(self) -> str | None:  # type: ignore[override]  # help() reads it: the tree, drawn on first use
        return importlib.import_module("enclavefl.errors._tree").__doc__


sys.modules[__name__].__class__ = _Errors

_LAZY = dict.fromkeys(
    """
    AdvisoryRefused CertificateMismatch CollateralExpired CollateralFromTheFuture CollateralTooOld
    DebugEnclaveRefused IsvProdIdMismatch IsvSvnTooLow JobDigestMismatch MeasurementMismatch MrEnclaveMismatch
    MrSignerMismatch MrTdMismatch NonceMismatch PlatformQuoteMissing PolicyViolation QuoteFormatError
    QuoteVerificationError ReportDataMismatch SimulationNotAllowed SimulationRootMismatch TcbStatusRefused
    TlsKeyNotBound
    """.split(),  # noqa: SIM905  (a word list keeps the names short)
    "_verification",
) | dict.fromkeys(
    """
    BaseModelMismatch Cancelled CohortMismatch ConflictingReceipts DataMismatch ElfFormatError
    EpsilonScheduleMismatch LedgerError LifetimeBudgetExceeded ManifestHardeningError ModelSchemaMismatch
    PolicyConfigError ProtocolError ReleaseInputError RollbackDetected RoundAlreadySigned RuntimePinMismatch
    SecureAggregationViolation SigstructFormatError SigstructSignatureError SitePolicyRefused StateDirInUse
    StateDirUnwritable TaskError UnmaskAlreadyAnswered UnresolvedLibrary UpdateOmitted
    """.split(),  # noqa: SIM905
    "_outside",
)
# errors/_common.py's classes (it defines nothing else), loaded at once; the lazy ones above load on first use
_AT_ONCE = sorted(n for n, v in vars(_common).items() if isinstance(v, type) and issubclass(v, Exception))
__all__ = sorted([*_AT_ONCE, *_LAZY])


def __getattr__(name: str) -> type[EnclaveFLError]:  # noqa: F405
    part = _LAZY.get(name)
    if part is None:
        raise AttributeError(f"module 'enclavefl.errors' has no attribute {name!r}")
    value: type[EnclaveFLError] = getattr(importlib.import_module(f"enclavefl.errors.{part}"), name)  # noqa: F405
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


for _name in _AT_ONCE:  # tracebacks and help() say `enclavefl.errors.X`, not the private module
    getattr(_common, _name).__module__ = __name__
