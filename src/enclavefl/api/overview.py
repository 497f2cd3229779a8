"""enclavefl: federated learning whose aggregator runs in an attested SGX enclave.

The Python API, one object per party (docs/api.md has an example for each):

Data owner -- verify the node, then train every round on data that never leaves you:
    DataOwnerClient(node=, job=, policy=, key=, cert=, site_policy=, state_dir=)
        .run(task, data) -> DataOwnerReport; .cancel(); usable in `with`
Model owner -- attest the node, submit, watch, download with verification:
    ModelOwnerClient.connect(node, job=, policy=, key=, cert=)
        .submit(model) .status() .watch() -> Iterator[RoundSummary] .receipts() .download(out) -> FinalModel
    make_job(name=, initial_model=, owners=, rounds=, train=, strategy=, dp_epsilon=, ...) -> JobSpec
    dump_job(job), load_job(path), read_initial_model(path)
Simulation -- a whole federation in one process, from the same task:
    simulate(task, {"bob": data, ...}, rounds=, train=) -> SimulationHistory
    simulate(task, OwnerPartition(count=1000, data=fn), clients_per_round=20, backend="ray"): owners as Ray tasks
    simulation_job(...), simulated_enclave(platform_dir)
Attestation -- for operators and auditors:
    verify_quote(quote, collateral_json, policy=) -> VerifiedEnclave; verify_evidence(evidence, policy=)
    examine_quote(...), examine_evidence(...) -> QuoteVerdict; evidence_from_quote(quote, collateral_json)
    verify_receipts(path, policy=, job=) -> Provenance
    AttestationPolicy, load_policy(path), SitePolicy, Evidence, VerifiedEnclave
Tasks -- what a data owner trains:
    TorchTask(model_factory=, loss_fn=, metrics=, load_data=), Task (protocol), TrainResult, EvalResult
    load_task("module:ATTR" or "file.py:ATTR") -> Task
    TensorData(x=, y=) in memory; StreamedData(dataset=) read in mini-batches from a torch Dataset
    NumpyTask (protocol: weights as named arrays), NumpyFitResult, NumpyTaskAdapter(numpy_task)
    FlowerClientTask(client_fn, parameter_names): an unchanged Flower NumPyClient
    TrainableSubset(model, trainable=, base_name=): only a named part trains and travels; the frozen rest is the
        job's base model (BaseModelSpec, by digest); PeftAdapters(base_model=, config=, base_name=): peft's adapters
        (LoRA) as that part (needs 'enclavefl[llm]'); causal_lm_loss for language models
Values -- JobSpec, BaseModelSpec, TrainConfig, StrategySpec, ModelWeights, RoundSummary, RoundReceipt, NodeStatus,
    DataOwnerReport, FinalModel, Provenance
Errors -- `enclavefl.errors`: every deliberate error is an EnclaveFLError leaf (ConfigError, AttestationError,
    ReceiptError, Cancelled, ...).

`import enclavefl` is light: each name is imported (with torch, grpc, ...) the first time it is used. Names that
train need PyTorch (`pip install 'enclavefl[torch]'`) and say so when used without it; the others work without it.
"""

# This docstring is `enclavefl.__doc__` (what `help(enclavefl)` shows): enclavefl/__init__.py serves it on first
# use, so that the package file every enclave import runs stays a few lines (tests/api/test_public_names.py).
