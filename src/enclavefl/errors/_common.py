"""The errors any party raises, the enclave included (re-exported by enclavefl.errors; import from there).

It defines these classes and nothing else: enclavefl.errors re-exports every class here by name.
"""


class EnclaveFLError(Exception):
    """Root of every error enclavefl raises on purpose."""


class ConfigError(EnclaveFLError):
    """A configuration value is invalid; the message names the field."""


class JobSpecError(ConfigError):
    """The job spec is invalid."""


class MemoryBudgetExceeded(ConfigError):
    """A job's aggregation strategy would need more memory than the node allows (checked at submission)."""


class EnclaveTooSmall(MemoryBudgetExceeded):
    """The job's rounds need more memory than the enclave it runs in was signed with (checked at node start)."""


class BindError(ConfigError):
    """The node cannot listen on the address it was given."""


class PortInUse(BindError):
    """Another process (often another node) already listens on the node's port."""


class UnsafeSecureAggregation(JobSpecError):
    """A [secure_aggregation] section an owner refuses: threshold, degree, modulus or strategy unsafe (reason given)."""


class DuplicateEnrolment(JobSpecError):
    """One key (certificate) enrolled under two names: one party that would count twice towards K."""


class ReleaseBelowK(JobSpecError):
    """The job's aggregation rule could release a value computed from fewer than K updates (krum, median, ...).

    K counts the updates a round receives; a rule that then keeps one of them (Krum), or one per coordinate
    (the median), releases an owner's values however large K is. Refused when the job is made and when loaded.
    """


class CodecError(EnclaveFLError):
    """Bytes that do not decode: malformed safetensors, framing or bundles."""


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


class SessionReplaced(NotEnrolled):
    """A newer join with the same data owner's key replaced this session: two processes hold one owner's key.

    Not retried by joining again (the two would take turns replacing each other): the owner stops and says why.
    """


class NotInCohort(UpdateRejected):
    """An enrolled owner outside the round's cohort (drawn in the enclave) uploaded or signed for the round."""


class TooManyExamples(UpdateRejected):
    """The update declares more training examples than the job's max_examples_per_update (its fold weight)."""


class UpdateExcluded(UpdateRejected):
    """This owner's update made the round's aggregate non-finite; the redone round does not take it."""


class MaskingRefused(UpdateRejected):
    """A masked-mode message (keys, shares, masked input, unmask shares) refused: wrong phase, repeat, bad form."""


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


class MaskedRoundLost(UnmaskingFailed):
    """Masked mode: the round's sum was unmasked and then failed its bound; it is never unmasked again: the job ends."""


class PrivacyError(EnclaveFLError):
    """Differential-privacy configuration or accounting failed."""


class PrivacyBudgetExceeded(PrivacyError):
    """The next round would exceed the job's epsilon budget."""


class AttestationError(EnclaveFLError):
    """The enclave's evidence could not be trusted."""


class TeeUnavailable(AttestationError):
    """The TEE backend cannot produce evidence or keys here."""


class SealingError(EnclaveFLError):
    """Sealed bytes do not open: tampered, wrong key, wrong label or unknown format."""


class CheckpointError(SealingError):
    """A sealed node checkpoint is missing, corrupt, tampered or from another job; nothing was loaded."""


class ReceiptError(EnclaveFLError):
    """A round receipt is malformed or its signature does not verify."""


class NodeBusy(EnclaveFLError):
    """A limit of the node refused the call (concurrent streams, watchers, request rate); retry later.

    The message names the limit and the `node serve` option that sets it. gRPC status RESOURCE_EXHAUSTED.
    """
