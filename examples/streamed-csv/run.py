"""Bob and Alice each hold CSV shards; a simulated federation trains a logistic regression on them in batches.

    python examples/streamed-csv/run.py [WORKDIR]

The same `TASK` runs unchanged with `enclavefl data-owner run --task task.py:TASK --data WORKDIR/alice`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_shards import write_shards
from task import TASK, load_shards

import enclavefl


def main(workdir: Path, *, rounds: int = 3, shards: int = 4, rows: int = 500) -> dict[str, float]:
    bob = workdir / "bob"
    alice = workdir / "alice"
    held_out = workdir / "model-owner-test"
    write_shards(bob, shards=shards, rows_per_shard=rows, seed=1)
    write_shards(alice, shards=shards, rows_per_shard=rows, seed=2)
    write_shards(held_out, shards=1, rows_per_shard=rows, seed=3)
    history = enclavefl.simulate(
        TASK, {"bob": bob, "alice": alice}, rounds=rounds,
        train=enclavefl.TrainConfig(local_epochs=1, batch_size=32, lr=0.5),
    )  # fmt: skip
    for summary in history.rounds:
        print(f"round {summary.round}: aggregated train loss {summary.metrics['train_loss']:.4f}")
    final = TASK.evaluate(history.load_model(TASK), load_shards(held_out))
    print(f"held-out loss {final.loss:.4f}, accuracy {final.metrics['accuracy']:.3f} over {final.num_examples} rows")
    return {"loss": final.loss, "accuracy": final.metrics["accuracy"]}


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
