"""`enclavefl job init`: the model owner writes the job spec every party checks (training, K, DP, masked mode).

    enclavefl job init --name demo --model init.safetensors --owner alice=alice.pem --owner bob=bob.pem \
        --owner carol=carol.pem --model-owner-cert mo.pem --masked --dp-epsilon 8

With --masked and DP the job's [secure_aggregation] table says `noise = "skellam"`: every data owner adds its share
of the noise before masking, so the sum the enclave unmasks is already private, and the [dp] table's epsilon schedule
is the Skellam mechanism's (privacy/epsilon.py `job_epsilon_schedule`), which each owner recomputes before it joins.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from enclavefl.core.exit_codes import ExitCode
from enclavefl.errors import EnclaveFLError

if TYPE_CHECKING:
    from enclavefl.core.job import JobSpec

MASKED_HELP = (
    "Masked mode (secure aggregation): each data owner clips, encodes and masks its update, and the enclave only "
    "ever unmasks the sum of at least K of them (fedavg, unweighted). With DP the owners also add their share of "
    "the noise before masking (Skellam), so even a reader of enclave memory sees only noised sums."
)
NOISE_HELP = (
    "Masked DP jobs: where the noise is added. 'skellam' (default): each owner adds its share before masking. "
    "'insecure_central': INSECURE, the enclave adds it after unmasking, so enclave memory holds every round's "
    "noise-free sum; owners refuse such a job unless their site policy sets allow_insecure_central_noise = true."
)


def init(
    name: Annotated[str, typer.Option(help="Job name.")],
    model: Annotated[Path, typer.Option(help="Initial model (safetensors); the job commits to its schema and hash.")],
    owner: Annotated[list[str], typer.Option(help="Enroll a data owner: NAME=CERT.pem (repeat for each owner).")],
    model_owner_cert: Annotated[
        Path | None, typer.Option(help="Your certificate (from `data-owner keygen --name model-owner`).")
    ] = None,
    rounds: Annotated[int, typer.Option(min=1, help="Federated rounds.")] = 10,
    min_contributions: Annotated[int, typer.Option(min=1, help="K: no aggregate of fewer updates leaves.")] = 2,
    deadline: Annotated[float, typer.Option(help="Seconds a round waits for updates before it closes.")] = 300.0,
    local_steps: Annotated[
        int | None, typer.Option(min=1, help="Optimizer steps per owner per round [default: 5 unless --local-epochs].")
    ] = None,
    local_epochs: Annotated[
        int | None, typer.Option(min=1, help="Passes over each owner's data per round (instead of --local-steps).")
    ] = None,
    lr: Annotated[float, typer.Option(help="Local learning rate.")] = 0.1,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Local batch size (default: full batch).")] = None,
    optimizer: Annotated[str, typer.Option(help="Local optimizer: 'sgd' or 'adam' (adapters often use adam).")] = "sgd",
    momentum: Annotated[float, typer.Option(min=0.0, help="SGD momentum (0: none).")] = 0.0,
    proximal_mu: Annotated[
        float, typer.Option(min=0.0, help="FedProx: weight of the proximal term mu/2 ||w - w_global||^2 (0: FedAvg).")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of each owner's local shuffling and initialization.")] = 0,
    weighted: Annotated[bool, typer.Option(help="FedAvg weighted by example counts (else plain mean).")] = True,
    strategy: Annotated[
        str,
        typer.Option(
            help="Aggregation rule: fedavg, centered_clipping (robust, needs --param tau=R), trimmed_mean, multikrum, "
            "fedavgm, fedadam, ... A rule that could release a value computed from fewer than K updates (krum, "
            "median, multikrum with select < K, ...) is refused (docs/robustness.md)."
        ),
    ] = "fedavg",
    param: Annotated[
        list[str] | None,
        typer.Option(help="A strategy parameter KEY=VALUE (repeat), e.g. --param tau=0.5; VALUE is a TOML value."),
    ] = None,
    on_round_failure: Annotated[str, typer.Option(help="'retry' a round with fewer than K updates, or 'stop'.")] = (
        "retry"
    ),
    max_examples_per_update: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="The most examples one update may declare (its weight in a weighted mean); more is refused. "
            "Set it near your largest owner's data set: it bounds how far one owner can outweigh the others "
            "[default: 10^9].",
        ),
    ] = None,
    evaluate_every: Annotated[
        int,
        typer.Option(
            min=0,
            help="Owners' evaluation: every N rounds each data owner evaluates the model the round starts from on "
            "its held-out data (`data-owner run --eval-data`) and the node releases the means over >= K owners "
            "(rounds 1, 1+N, ...; not with DP or masked mode). 0: never.",
        ),
    ] = 0,
    dp_epsilon: Annotated[
        float | None,
        typer.Option(
            help="DP: target epsilon over all rounds; the noise multiplier is calibrated to it (with --masked, to the "
            "Skellam accounting of the owners' noise)."
        ),
    ] = None,
    dp_noise_multiplier: Annotated[
        float | None, typer.Option(help="DP: noise std / clip norm (instead of --dp-epsilon).")
    ] = None,
    dp_clip_norm: Annotated[float, typer.Option(help="DP: L2 bound on each owner's update delta.")] = 1.0,
    dp_delta: Annotated[float, typer.Option(help="DP: delta of the (epsilon, delta) guarantee.")] = 1e-5,
    dp_accountant: Annotated[
        str, typer.Option(help="DP: 'rdp' or 'pld' (tighter, slower; not with --masked).")
    ] = "rdp",
    base_model: Annotated[
        str | None,
        typer.Option(
            help="NAME=SHA256: --model holds only the part that trains and travels (LoRA adapters, a named subset) "
            "and each data owner trains it on its own copy of this frozen base model, refused before training "
            "unless that copy's weights digest is SHA256 (`enclavefl job initial-model --task ...` prints it)."
        ),
    ] = None,
    clients_per_round: Annotated[
        str | None,
        typer.Option(
            help="Owners the enclave draws for each round: a count (20) or a fraction of the enrolled (0.1 or 10%). "
            "The draw uses the enclave's own randomness after the round opens, so the operator cannot pick who takes "
            "part; owners outside a round's cohort wait. K then counts the cohort's updates [default: every owner, "
            "every round].",
        ),
    ] = None,
    masked: Annotated[bool, typer.Option("--masked", help=MASKED_HELP)] = False,
    masked_noise: Annotated[str | None, typer.Option(help=NOISE_HELP)] = None,
    masked_clip_norm: Annotated[
        float | None,
        typer.Option(help="Masked mode: the L2 norm each owner clips its update to [default: --dp-clip-norm]."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Job spec to write.")] = Path("job.toml"),
    force: Annotated[
        bool, typer.Option("--force", help="Replace --out if it exists (a job spec is not rewritten silently).")
    ] = False,
) -> None:
    """Write a self-contained job spec: training, the aggregation rule, K, deadline, enrolled owners, the model's hash.

    Every party checks this exact file: data owners run with it, and the node must attest its digest. Robust
    aggregation and server optimizers: --strategy and --param (e.g. --strategy centered_clipping --param tau=0.5).
    With --dp-epsilon or --dp-noise-multiplier the job adds Gaussian noise inside the enclave (an unweighted mean)
    and its dp table lists the epsilon after every round, which each data owner recomputes before it joins
    (docs/privacy.md). With --masked as well, the owners add that noise before masking (distributed Skellam noise,
    the default) and the schedule is the Skellam mechanism's; `--masked-noise insecure_central` is the old,
    insecure placement (docs/threat-model.md).
    """
    from enclavefl.api.jobs import make_job
    from enclavefl.cli.job_options import base_model_option, strategy_params
    from enclavefl.core.job import DEFAULT_MAX_EXAMPLES_PER_UPDATE, TrainConfig
    from enclavefl.core.jobfile import read_initial_model
    from enclavefl.core.jobfile_write import dump_job
    from enclavefl.owner.model_owner_files import read_owner_certificates

    if model_owner_cert is None:
        _usage_error(
            "ConfigError: --model-owner-cert is missing: a job without the model owner's certificate can never be "
            "submitted (make one with `enclavefl data-owner keygen --name model-owner --out keys`)"
        )
    if out.exists() and not force:
        _usage_error(f"ConfigError: --out {out} exists; nothing was written (--force replaces it)")
    try:
        steps = local_steps if local_steps is not None or local_epochs is not None else 5
        train = TrainConfig(
            local_steps=steps,
            local_epochs=local_epochs,
            lr=lr,
            batch_size=batch_size,
            optimizer=optimizer,  # type: ignore[arg-type]  # TrainConfig checks the name
            momentum=momentum,
            proximal_mu=proximal_mu,
            seed=seed,
        )
        job = make_job(
            name=name,
            initial_model=read_initial_model(model),
            owners=read_owner_certificates(owner),
            model_owner_certificate=_model_owner_certificate(model_owner_cert),
            rounds=rounds,
            train=train,
            min_contributions=min_contributions,
            round_deadline_seconds=deadline,
            strategy=strategy,
            params=strategy_params(param or []),
            weighted=weighted,
            on_round_failure=on_round_failure,
            dp_epsilon=dp_epsilon,
            dp_noise_multiplier=dp_noise_multiplier,
            dp_clip_norm=dp_clip_norm,
            dp_delta=dp_delta,
            dp_accountant=dp_accountant,
            max_examples_per_update=max_examples_per_update or DEFAULT_MAX_EXAMPLES_PER_UPDATE,
            base_model=base_model_option(base_model),
            clients_per_round=clients_per_round,
            evaluate_every=evaluate_every,
            masked=masked,
            masked_noise=masked_noise,
            masked_clip_norm=masked_clip_norm,
        )
    except EnclaveFLError as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    try:
        out.write_text(dump_job(job))
    except OSError as exc:
        typer.echo(f"error: {out}: {exc.strerror or exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    typer.echo(
        f"wrote {out}: job {job.name!r}, job digest {job.digest().hex()}, initial model weights digest "
        f"{job.initial_model_sha256}"
        + (f", frozen base model {job.base_model.name!r} {job.base_model.sha256}" if job.base_model else "")
    )
    describe_masking(job)


def describe_masking(job: JobSpec) -> None:
    """What masked mode does for this job, and the loud warning when its noise is added after unmasking."""
    from enclavefl.core.secure_aggregation import INSECURE_CENTRAL_WARNING

    spec = job.secure_aggregation
    if spec is None or not job.masked:
        return
    if spec.insecure_central_noise:
        typer.echo(INSECURE_CENTRAL_WARNING, err=True)
    elif spec.distributed_noise:
        schedule = (job.dp or {}).get("epsilon_schedule") or [0.0]
        assert isinstance(schedule, list)
        typer.echo(
            f"masked mode: owners add distributed Skellam noise before masking; epsilon after {job.rounds} rounds "
            f"{float(schedule[-1]):.4g} (Skellam accounting)"
        )
    else:
        typer.echo("masked mode: the enclave unmasks only sums of at least K owners' updates (no DP)")


def _usage_error(message: str) -> NoReturn:
    """`message` is `Class: what is wrong`; one line on stderr, status 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(ExitCode.CONFIG)


def _model_owner_certificate(path: Path | None) -> str:
    from enclavefl.owner.model_owner_files import read_certificate

    return read_certificate(path, "--model-owner-cert") if path is not None else ""
