"""Federated LoRA on a tiny Llama: held-out loss goes down, only adapters cross the wire, and an owner whose base
model differs is refused before it trains; DP, a robust rule and masked mode work on the adapters unchanged."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import enclavefl
from enclavefl import PeftAdapters, TensorData, TorchTask, TrainConfig, causal_lm_loss
from enclavefl.core.job import JobSpec, StrategySpec
from enclavefl.core.secure_aggregation import SecureAggregationSpec
from enclavefl.core.weights import ModelWeights
from enclavefl.errors import BaseModelMismatch

peft = pytest.importorskip("peft", reason="LoRA needs the llm extra: pip install 'enclavefl[llm]'")
transformers = pytest.importorskip("transformers", reason="LoRA needs the llm extra: pip install 'enclavefl[llm]'")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from dp_tables import dp_table  # noqa: E402

VOCAB = 32
OWNERS = ("bob", "alice", "carol")
TRAIN = TrainConfig(local_steps=5, lr=1e-2, optimizer="adam", batch_size=16)


def tiny_llama(seed: int = 123) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    return transformers.LlamaForCausalLM(config)  # type: ignore[no-any-return]


def lora_task(base_seed: int = 123) -> TorchTask:
    lora = peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    adapters = PeftAdapters(base_model=lambda: tiny_llama(base_seed), config=lora, base_name="tiny-llama")
    return TorchTask(model_factory=adapters, loss_fn=causal_lm_loss)


def progressions(step: int, count: int, seed: int) -> TensorData:
    """Sequences that count up by `step` modulo the vocabulary: each owner its own step (non-IID)."""
    start = torch.randint(0, VOCAB, (count, 1), generator=torch.Generator().manual_seed(seed))
    tokens = (start + step * torch.arange(17)) % VOCAB
    return TensorData(x=tokens[:, :-1], y=tokens[:, 1:])


def owners_data() -> dict[str, TensorData]:
    return {name: progressions(i + 1, 64, seed=i) for i, name in enumerate(OWNERS)}


def held_out() -> TensorData:
    parts = [progressions(i + 1, 32, seed=100 + i) for i in range(len(OWNERS))]
    return TensorData(x=torch.cat([p.x for p in parts]), y=torch.cat([p.y for p in parts]))


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny matrices: torch's second thread only contends (several times slower on a shared 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def federated() -> enclavefl.SimulationHistory:
    return enclavefl.simulate(lora_task(), owners_data(), rounds=3, train=TRAIN, seed=0)


def test_federated_lora_lowers_the_held_out_loss(federated: enclavefl.SimulationHistory) -> None:
    task = lora_task()
    torch.manual_seed(0)

    before = task.evaluate(task.create_model(), held_out()).loss
    after = task.evaluate(federated.load_model(task), held_out()).loss

    assert after < before - 0.1, (before, after)


def test_only_adapter_tensors_cross_the_wire(federated: enclavefl.SimulationHistory) -> None:
    model = lora_task().create_model()
    base_bytes = sum(t.nbytes for t in model.full_model.state_dict().values())  # type: ignore[operator]
    schema = federated.job.model_schema
    assert schema is not None

    assert all(".lora_A." in name or ".lora_B." in name for name in schema.names)
    assert sorted(federated.final_model) == sorted(schema.names)
    # the node accepts an update only if its tensors are exactly the schema's: every owner's was, every round
    assert [s.contributions for s in federated.rounds] == [3, 3, 3]
    assert all(not s.rejected for s in federated.rounds)
    assert schema.nbytes * 4 < base_bytes
    assert federated.job.base_model == model.frozen_base


def test_an_owner_with_another_base_model_is_refused_before_it_trains_or_connects(
    federated: enclavefl.SimulationHistory, tmp_path: Path
) -> None:
    from enclavefl.demos.process_federation import write_federation_files

    datasets = {n: {"x": d.x.numpy(), "y": d.y.numpy()} for n, d in owners_data().items()}
    initial = federated.final_model  # any adapters of the job's schema; the job below commits to them
    job = dataclasses.replace(federated.job, initial_model_sha256=initial.sha256().hex())
    files = write_federation_files(tmp_path, job=job, initial=initial, datasets=datasets)
    bob = files.owners["bob"]
    client = enclavefl.DataOwnerClient(
        node="127.0.0.1:9", job=files.job, policy=files.policy, key=bob.key, cert=bob.cert, name="bob"
    )  # nothing listens on port 9: a connection attempt would fail with another error, after a while

    with pytest.raises(BaseModelMismatch, match="refusing to train on another base model"):
        client.run(lora_task(base_seed=124), bob.data)


def delta_norm(final: ModelWeights, initial: ModelWeights) -> float:
    return float(np.sqrt(sum(np.sum((final[n] - initial[n]) ** 2) for n in final)))


def initial_adapters() -> ModelWeights:
    torch.manual_seed(0)
    model = lora_task().create_model()
    return ModelWeights({n: t.detach().numpy().copy() for n, t in model.state_dict().items()})


def one_round_job(base: JobSpec, **changes: object) -> JobSpec:
    return dataclasses.replace(
        base, rounds=1, strategy=StrategySpec(name="fedavg", params={"weighted": False}), **changes
    )  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def plain_round(federated: enclavefl.SimulationHistory) -> enclavefl.SimulationHistory:
    """One round of unweighted FedAvg from the initial adapters: what DP and masked mode are compared with."""
    return enclavefl.simulate(
        lora_task(), owners_data(), job=one_round_job(federated.job), initial_model=initial_adapters()
    )


def test_central_dp_clips_and_noises_the_adapter_update(
    federated: enclavefl.SimulationHistory, plain_round: enclavefl.SimulationHistory
) -> None:
    initial = initial_adapters()
    clip = 1e-3  # far below what one round of training moves the adapters
    clipped_job = one_round_job(federated.job, dp=dp_table(1, clip_norm=clip, noise_multiplier=1e-6, delta=1e-5))
    noisy_job = one_round_job(federated.job, dp=dp_table(1, clip_norm=clip, noise_multiplier=50.0, delta=1e-5))

    clipped = enclavefl.simulate(lora_task(), owners_data(), job=clipped_job, initial_model=initial)
    noisy = enclavefl.simulate(lora_task(), owners_data(), job=noisy_job, initial_model=initial)

    assert delta_norm(plain_round.final_model, initial) > 10 * clip
    assert delta_norm(clipped.final_model, initial) <= clip * 1.01
    assert delta_norm(noisy.final_model, initial) > 10 * clip  # noise std per coordinate 50 x clip / 3 owners
    assert sorted(noisy.final_model) == sorted(initial)


def test_masked_mode_on_adapters_releases_the_plain_mean(
    federated: enclavefl.SimulationHistory, plain_round: enclavefl.SimulationHistory
) -> None:
    initial = initial_adapters()
    spec = SecureAggregationSpec(degree=2, threshold=2, scale=float(1 << 20), modulus_bits=64, clip_norm=100.0)
    masked_job = one_round_job(federated.job, secure_aggregation=spec)

    masked = enclavefl.simulate(lora_task(), owners_data(), job=masked_job, initial_model=initial)

    assert masked.rounds[0].contributions == 3
    assert masked.final_model.allclose(plain_round.final_model, atol=1e-5)
    assert not masked.final_model.allclose(initial, atol=1e-4)  # it moved: the check above is not vacuous
    assert len(masked.receipts) == 1


def test_a_robust_rule_clips_the_adapter_updates(
    federated: enclavefl.SimulationHistory, plain_round: enclavefl.SimulationHistory
) -> None:
    initial = initial_adapters()
    tau = 1e-3
    job = dataclasses.replace(
        one_round_job(federated.job), strategy=StrategySpec(name="centered_clipping", params={"tau": tau})
    )

    clipped = enclavefl.simulate(lora_task(), owners_data(), job=job, initial_model=initial)

    assert delta_norm(plain_round.final_model, initial) > 10 * tau
    assert delta_norm(clipped.final_model, initial) <= tau * 1.0001  # each owner's step clipped to tau, then averaged
    assert clipped.rounds[0].contributions == 3
