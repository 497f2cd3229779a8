"""The one exception tree of enclavefl.

Every check that guards a trust decision raises one of these; none returns a bool.
Catch `EnclaveFLError` for "anything enclavefl refused", or a leaf for one precise reason.

    EnclaveFLError
    ├── ConfigError                      a job spec, policy or CLI input is invalid
    │   ├── JobSpecError
    │   │   ├── ReleaseBelowK            the job's rule could release a value shaped by fewer than K updates
    │   │   ├── DuplicateEnrolment       one key (certificate) enrolled under two names
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
    │   │   ├── BaseModelMismatch        the owner's frozen base model is not the one the job names (by digest)
    │   │   └── DataMismatch             the data does not fit the task's model
    │   ├── BindError                    the node cannot listen on its address
    │   │   └── PortInUse                another process (another node?) already listens on the port
    │   ├── StateDirInUse                another node, or this owner in this job, holds this state directory
    │   └── StateDirUnwritable           an owner's state directory cannot be created or written
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
    │   │   ├── SessionExpired           the caller's session outlived the node's session lifetime: join again
    │   │   └── SessionReplaced          a newer join with the same owner's key replaced this session
    │   ├── NotInCohort                  an owner outside the round's cohort uploaded or signed for it
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
    │       └── MaskedRoundLost          its sum was unmasked and failed the bound: never unmasked again
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
    │   ├── UpdateOmitted
    │   └── CohortMismatch               a receipt's cohort disagrees with what the node told this owner
    ├── ProtocolError                    a peer broke the protocol (transport layer)
    │   └── SecureAggregationViolation   the relay asked an owner for something masked mode never reveals
    │       └── UnmaskAlreadyAnswered    the owner answered this round's unmasking once: no more part in it
    ├── NodeBusy                         a node limit (streams, watchers, request rate) refused the call
    └── Cancelled                        the caller cancelled a run (DataOwnerClient.cancel); nothing more is sent
"""

# This docstring is `enclavefl.errors.__doc__` (what `help(enclavefl.errors)` shows): errors/__init__.py serves it
# on first use, so that the package file every enclave module imports stays small (tests/core/test_errors_package.py).
