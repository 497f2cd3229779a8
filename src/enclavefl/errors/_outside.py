"""Errors raised only outside the enclave: build tooling, data owners' tasks, ledgers, site policies and the
owners' checks of the node's receipt chain."""

from __future__ import annotations

from enclavefl.errors._common import ConfigError, EnclaveFLError, PrivacyError, ReceiptError


class PolicyConfigError(ConfigError):
    """An attestation policy file or builder call is invalid."""


class SigstructFormatError(ConfigError):
    """An enclave signature file (.sig) is not a well-formed SGX SIGSTRUCT."""


class SigstructSignatureError(SigstructFormatError):
    """The SIGSTRUCT's RSA-3072 signature does not verify against its own modulus."""


class ManifestHardeningError(ConfigError):
    """A Gramine manifest weakens a guarantee: debug enclave, insecure__ key, host env or argv, ..."""


class ElfFormatError(ConfigError):
    """A binary the enclave would load is not a 64-bit little-endian ELF with a readable dynamic section."""


class UnresolvedLibrary(ConfigError):
    """A shared library the interpreter or an extension module links is missing or outside the enclave's mounts."""


class ReleaseInputError(ConfigError):
    """An enclave release's recorded inputs (release.toml) are missing, malformed or do not match the release."""


class RuntimePinMismatch(ReleaseInputError):
    """The root filesystem a release is built in holds other Debian packages than the release pins."""


class TaskError(ConfigError):
    """A data owner's training task cannot be loaded or run (found before the node is contacted)."""


class ModelSchemaMismatch(TaskError):
    """The task's model does not have the job's tensors (names, shapes, dtypes)."""


class BaseModelMismatch(TaskError):
    """The owner's local frozen base model (under the travelling adapters) is not the job's: refused before training."""


class DataMismatch(TaskError):
    """The data owner's data does not fit the task's model (a forward pass on one example failed)."""


class StateDirInUse(ConfigError):
    """Another process holds the lock of this state directory: a node's, or a data owner's for this job (two
    writers would corrupt the job, or sign rounds the other does not remember)."""


class StateDirUnwritable(ConfigError):
    """An owner's state directory cannot be created or written (a read-only disk, a file in the way): nothing was
    sent, since an owner that cannot remember what it signs must not sign."""


class EpsilonScheduleMismatch(PrivacyError):
    """A job states less epsilon for some round than dp-accounting computes for its parameters."""


class LifetimeBudgetExceeded(PrivacyError):
    """Joining this job (or one more round of it) would take the owner past its lifetime epsilon."""


class LedgerError(PrivacyError):
    """The owner's privacy ledger is missing, older than its receipt memory, or unreadable."""


class SitePolicyRefused(EnclaveFLError):
    """A job outside the data owner's site policy; raised before anything is sent.

    `field` is the site-policy key, `value` the job's value, `limit` what the site policy allows.
    """

    def __init__(self, field: str, value: object, limit: object, why: str) -> None:
        super().__init__(f"site policy {field}: the job has {value}, the site policy allows {limit} ({why})")
        self.field = field
        self.value = value
        self.limit = limit


class Cancelled(EnclaveFLError):
    """The caller cancelled the run (`DataOwnerClient.cancel()`): the owner stopped and sends nothing more."""


class ProtocolError(EnclaveFLError):
    """A peer broke the protocol."""


class SecureAggregationViolation(ProtocolError):
    """The relay asked a masked-mode owner for what it never reveals (both shares of one owner, a second answer)."""


class UnmaskAlreadyAnswered(SecureAggregationViolation):
    """This owner answered round r's unmasking request (its durable record says so): it takes no more part in r."""


class RollbackDetected(ReceiptError):
    """The node presented a receipt chain older than one already seen."""


class RoundAlreadySigned(RollbackDetected):
    """This owner signed round r's receipt; a node that asks it to upload for round r again replaced or lost it."""


class ConflictingReceipts(RollbackDetected):
    """Two different receipts for one job and round, both signed by the attested node key.

    An enclave shows a round's receipt only after sealing it, and a restarted enclave shows the sealed one again,
    so two of them prove that the host ran the enclave from a copied or deleted state. Both are kept as evidence.
    """

    def __init__(self, message: str, *, first: object = None, second: object = None) -> None:
        super().__init__(message)
        self.first = first  # the two SignedReceipts (typed object: errors imports nothing of enclavefl)
        self.second = second


class UpdateOmitted(ReceiptError):
    """The node accepted this owner's update but the round's signed receipt does not list its commitment."""


class CohortMismatch(ReceiptError):
    """A receipt's cohort commitment disagrees with what the node told this owner (member or not) or the job's size."""


__all__ = [
    "BaseModelMismatch",
    "Cancelled",
    "CohortMismatch",
    "ConflictingReceipts",
    "DataMismatch",
    "ElfFormatError",
    "EpsilonScheduleMismatch",
    "LedgerError",
    "LifetimeBudgetExceeded",
    "ManifestHardeningError",
    "ModelSchemaMismatch",
    "PolicyConfigError",
    "ProtocolError",
    "ReleaseInputError",
    "RollbackDetected",
    "RoundAlreadySigned",
    "RuntimePinMismatch",
    "SecureAggregationViolation",
    "SigstructFormatError",
    "SigstructSignatureError",
    "SitePolicyRefused",
    "StateDirInUse",
    "StateDirUnwritable",
    "TaskError",
    "UnmaskAlreadyAnswered",
    "UnresolvedLibrary",
    "UpdateOmitted",
]

for _name in __all__:
    globals()[_name].__module__ = "enclavefl.errors"  # the public path, in tracebacks and help()
