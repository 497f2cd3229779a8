"""The one exception tree of enclavefl.

Every check that guards a trust decision raises one of these; none returns a bool.
Catch `EnclaveFLError` for "anything enclavefl refused", or a leaf for one precise reason.

    EnclaveFLError
    ├── ConfigError                      a job spec, policy or CLI input is invalid
    │   ├── JobSpecError
    │   │   ├── ReleaseBelowK            the job's rule could release a value shaped by fewer than K updates
    │   │   └── UnsafeSecureAggregation  a [secure_aggregation] section whose parameters are unsafe
    │   ├── PolicyConfigError
    │   ├── SigstructFormatError         an enclave .sig file is not a SIGSTRUCT we accept
    │   │   └── SigstructSignatureError  its RSA signature does not verify
    │   ├── ManifestHardeningError       a Gramine manifest weakens a guarantee (debug, insecure__*)
    │   ├── ElfFormatError               a binary the enclave would load is not an ELF we can read
    │   ├── UnresolvedLibrary            a library the enclave's binaries link is missing or outside its mounts
    │   ├── MemoryBudgetExceeded         a job's aggregation would not fit the node's memory limit
    │   │   └── EnclaveTooSmall          the job's model does not fit the signed enclave size (node start)
    │   ├── ReleaseInputError            a release.toml (an enclave release's recorded inputs) is invalid
    │   │   └── RuntimePinMismatch       the build root's runtime is not the pinned Debian packages
    │   ├── TaskError                    a data owner's task cannot be loaded or run (before contacting the node)
    │   │   ├── ModelSchemaMismatch      the task's model is not the job's model schema
    │   │   └── DataMismatch             the data does not fit the task's model
    │   ├── BindError                    the node cannot listen on its address
    │   │   └── PortInUse                another process (another node?) already listens on the port
    │   └── StateDirInUse                another node process holds this state directory
    ├── CodecError                       bytes that do not decode (safetensors, framing, bundles)
    ├── UpdateRejected                   an update refused before it touches the accumulator
    │   ├── MissingTensor / UnexpectedTensor / ShapeMismatch / DtypeMismatch
    │   ├── NonFiniteValues
    │   ├── UpdateTooLarge
    │   ├── MalformedUpdate
    │   ├── WrongRound
    │   ├── DuplicateUpdate
    │   ├── CommitmentMismatch           the upload's commitment does not open to the payload received
    │   ├── NotEnrolled
    │   │   └── SessionExpired           the caller's session outlived the node's session lifetime: join again
    │   ├── TooManyExamples              an update declares more examples than the job allows
    │   ├── UpdateExcluded               its sender's update made this round's aggregate non-finite
    │   ├── MaskingRefused               a masked-mode protocol message refused (phase, duplicate, bad form)
    │   └── AcknowledgementRefused       an owner's signature over a pending receipt is refused
    ├── AggregationError
    │   ├── NotEnoughContributions       fewer than K updates: nothing is released
    │   ├── RoundStateError
    │   ├── ReleaseWithheld              a sealed round lacks its contributors' signatures: nothing released
    │   ├── NonFiniteAggregate           the aggregate is not finite: the round is redone without the offender(s)
    │   └── UnmaskingFailed              masked mode: too few shares, or the unmasked sum is out of bounds
    ├── PrivacyError
    │   ├── PrivacyBudgetExceeded
    │   ├── EpsilonScheduleMismatch      a job states less epsilon than its parameters spend
    │   ├── LifetimeBudgetExceeded       a data owner's ledger across jobs would pass its site policy's budget
    │   └── LedgerError                  a data owner's privacy ledger is missing, stale or unreadable
    ├── SitePolicyRefused                a job outside a data owner's own site policy (nothing sent)
    ├── AttestationError                 the enclave could not be trusted
    │   ├── QuoteFormatError             bytes are not a quote we understand
    │   ├── QuoteVerificationError       dcap-qvl refused the quote or collateral
    │   │   ├── SimulationRootMismatch   a simulated quote signed under another root than the policy's
    │   │   ├── CollateralExpired
    │   │   └── CollateralFromTheFuture  issued later than this verifier's clock + the tolerated skew
    │   ├── ReportDataMismatch           quote not bound to this TLS key / job / nonce
    │   │   ├── TlsKeyNotBound / JobDigestMismatch / NonceMismatch
    │   ├── PolicyViolation
    │   │   ├── MeasurementMismatch (MrEnclaveMismatch, MrSignerMismatch, MrTdMismatch, IsvProdIdMismatch)
    │   │   ├── IsvSvnTooLow
    │   │   ├── DebugEnclaveRefused
    │   │   ├── TcbStatusRefused
    │   │   ├── AdvisoryRefused
    │   │   ├── CollateralTooOld
    │   │   └── SimulationNotAllowed
    │   ├── TeeUnavailable               the backend cannot produce evidence here
    │   │   └── PlatformQuoteMissing     the host agent has no quote of this platform yet (node not started)
    │   └── CertificateMismatch          the peer changed its certificate after attestation
    ├── SealingError                     sealed bytes that do not open (tampered, wrong key/label)
    │   └── CheckpointError              a node checkpoint that cannot be resumed from
    ├── ReceiptError
    │   ├── RollbackDetected
    │   │   ├── RoundAlreadySigned       the node asks for a new upload to a round this owner signed
    │   │   └── ConflictingReceipts      two node-signed receipts for one round: proof of a forked node
    │   └── UpdateOmitted
    ├── ProtocolError                    a peer broke the protocol (transport layer)
    │   └── SecureAggregationViolation   the relay asked an owner for something masked mode never reveals
    ├── NodeBusy                         a node limit (streams, watchers, request rate) refused the call
    └── Cancelled                        the caller cancelled a run (DataOwnerClient.cancel); nothing more is sent
"""

from __future__ import annotations


class EnclaveFLError(Exception):
    """Root of every error enclavefl raises on purpose."""


# --- configuration -------------------------------------------------------------------------
class ConfigError(EnclaveFLError):
    """A configuration value is invalid; the message names the field."""


class JobSpecError(ConfigError):
    """The job spec is invalid."""


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


class MemoryBudgetExceeded(ConfigError):
    """A job's aggregation strategy would need more memory than the node allows (checked at submission)."""


class EnclaveTooSmall(MemoryBudgetExceeded):
    """The job's rounds need more memory than the enclave it runs in was signed with (checked at node start)."""


class ReleaseInputError(ConfigError):
    """An enclave release's recorded inputs (release.toml) are missing, malformed or do not match the release."""


class RuntimePinMismatch(ReleaseInputError):
    """The root filesystem a release is built in holds other Debian packages than the release pins."""


class TaskError(ConfigError):
    """A data owner's training task cannot be loaded or run (found before the node is contacted)."""


class ModelSchemaMismatch(TaskError):
    """The task's model does not have the job's tensors (names, shapes, dtypes)."""


class DataMismatch(TaskError):
    """The data owner's data does not fit the task's model (a forward pass on one example failed)."""


class BindError(ConfigError):
    """The node cannot listen on the address it was given."""


class PortInUse(BindError):
    """Another process (often another node) already listens on the node's port."""


class StateDirInUse(ConfigError):
    """Another node process holds the lock of this state directory (two writers would corrupt the job)."""


class UnsafeSecureAggregation(JobSpecError):
    """A [secure_aggregation] section an owner refuses: threshold, degree, modulus or strategy unsafe (reason given)."""


class ReleaseBelowK(JobSpecError):
    """The job's aggregation rule could release a value computed from fewer than K updates (krum, median, ...).

    K counts the updates a round receives; a rule that then keeps one of them (Krum), or one per coordinate
    (the median), releases an owner's values however large K is. Refused when the job is made and when loaded.
    """


# --- codec ---------------------------------------------------------------------------------
class CodecError(EnclaveFLError):
    """Bytes that do not decode: malformed safetensors, framing or bundles."""


# --- updates -------------------------------------------------------------------------------
class UpdateRejected(EnclaveFLError):
    """An update was refused before it touched the accumulator."""


class MissingTensor(UpdateRejected):
    """The update lacks a tensor the global model has."""


class UnexpectedTensor(UpdateRejected):
    """The update has a tensor the global model does not."""


class ShapeMismatch(UpdateRejected):
    """A tensor's shape differs from the global model's."""


class DtypeMismatch(UpdateRejected):
    """A tensor's dtype differs from the global model's."""


class NonFiniteValues(UpdateRejected):
    """A tensor holds NaN or Inf."""


class UpdateTooLarge(UpdateRejected):
    """The update exceeds the job's size limit."""


class MalformedUpdate(UpdateRejected):
    """The update's bytes or metadata are malformed."""


class WrongRound(UpdateRejected):
    """The update is for a round other than the current one."""


class DuplicateUpdate(UpdateRejected):
    """The data owner already contributed to this round."""


class AcknowledgementRefused(UpdateRejected):
    """An owner's signature over a pending receipt names another receipt or round, or does not verify."""


class CommitmentMismatch(UpdateRejected):
    """The upload's commitment (HMAC under the owner's salt) does not open to the payload the node received."""


class NotEnrolled(UpdateRejected):
    """The sender is not enrolled in the job."""


class SessionExpired(NotEnrolled):
    """The caller's session is older than the node's session lifetime; joining again gives a new one."""


class TooManyExamples(UpdateRejected):
    """The update declares more training examples than the job's max_examples_per_update (its fold weight)."""


class UpdateExcluded(UpdateRejected):
    """This owner's update made the round's aggregate non-finite; the redone round does not take it."""


class MaskingRefused(UpdateRejected):
    """A masked-mode message (keys, shares, masked input, unmask shares) refused: wrong phase, repeat, bad form."""


# --- aggregation ---------------------------------------------------------------------------
class AggregationError(EnclaveFLError):
    """Aggregation could not produce a result."""


class NotEnoughContributions(AggregationError):
    """Fewer than K updates arrived; no aggregate is released."""


class RoundStateError(AggregationError):
    """An operation was called in the wrong phase of a round."""


class ReleaseWithheld(AggregationError):
    """A sealed round cannot be released: some accepted contributor has not signed its receipt (two phases)."""


class NonFiniteAggregate(AggregationError):
    """The round's aggregate holds NaN or Inf (finite updates whose weighted sum overflows): nothing is sealed.

    The round is opened again without the update(s) that caused it (see SecureWorker.close_round).
    """


class UnmaskingFailed(AggregationError):
    """Masked mode: a seed lacks threshold shares, or the unmasked sum breaks its bound; nothing is released."""


# --- privacy -------------------------------------------------------------------------------
class PrivacyError(EnclaveFLError):
    """Differential-privacy configuration or accounting failed."""


class PrivacyBudgetExceeded(PrivacyError):
    """The next round would exceed the job's epsilon budget."""


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


# --- attestation ---------------------------------------------------------------------------
class AttestationError(EnclaveFLError):
    """The enclave's evidence could not be trusted."""


class QuoteFormatError(AttestationError):
    """The bytes are not a quote (or evidence bundle) we understand."""


class QuoteVerificationError(AttestationError):
    """dcap-qvl refused the quote or its collateral."""


class CollateralExpired(QuoteVerificationError):
    """The collateral (TCB info, QE identity or a CRL) is past its nextUpdate at `now`."""


class CollateralFromTheFuture(QuoteVerificationError):
    """The TCB info or QE identity is dated later than `now` plus the tolerated clock skew (tee.verify)."""


class ReportDataMismatch(AttestationError):
    """The quote's report data does not bind this TLS key, job digest and nonce."""


class TlsKeyNotBound(ReportDataMismatch):
    """The quote binds a TLS key other than the one the channel presents."""


class JobDigestMismatch(ReportDataMismatch):
    """The node runs a job other than the one the data owner agreed to."""


class NonceMismatch(ReportDataMismatch):
    """The evidence answers another nonce: a replayed or stale bundle."""


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


class SimulationRootMismatch(QuoteVerificationError):
    """A simulated quote's certificate chain comes from another simulated platform than the policy's root."""


class TeeUnavailable(AttestationError):
    """The TEE backend cannot produce evidence or keys here."""


class PlatformQuoteMissing(TeeUnavailable):
    """The host agent found no "platform-quote" line (or quote file) yet: it cannot know what to fetch."""


class CertificateMismatch(AttestationError):
    """The peer presented a certificate other than the attested one."""


# --- sealing -------------------------------------------------------------------------------
class SealingError(EnclaveFLError):
    """Sealed bytes do not open: tampered, wrong key, wrong label or unknown format."""


class CheckpointError(SealingError):
    """A sealed node checkpoint is missing, corrupt, tampered or from another job; nothing was loaded."""


# --- receipts ------------------------------------------------------------------------------
class ReceiptError(EnclaveFLError):
    """A round receipt is malformed or its signature does not verify."""


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


# --- protocol ------------------------------------------------------------------------------
class ProtocolError(EnclaveFLError):
    """A peer broke the protocol."""


class NodeBusy(EnclaveFLError):
    """A limit of the node refused the call (concurrent streams, watchers, request rate); retry later.

    The message names the limit and the `node serve` option that sets it. gRPC status RESOURCE_EXHAUSTED.
    """


class Cancelled(EnclaveFLError):
    """The caller cancelled the run (`DataOwnerClient.cancel()`): the owner stopped and sends nothing more."""


class SecureAggregationViolation(ProtocolError):
    """The relay asked a masked-mode owner for what it never reveals (both shares of one owner, a second answer)."""
