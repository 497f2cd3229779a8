"""Write CSV shards of a synthetic binary classification problem: `python make_shards.py OUT_DIR --shards 4`.

The label is 1 when a fixed linear score of the 8 features is positive. Every owner's shards come from the same
rule (and a seed per owner), so a federated model can learn it; nothing here is secret.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

FEATURES = 8
TRUE_WEIGHTS = np.array([1.5, -2.0, 0.5, 1.0, -0.5, 2.0, -1.0, 0.25])


def write_shards(directory: Path, *, shards: int, rows_per_shard: int, seed: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)  # synthetic data, not a secret
    paths = []
    for index in range(shards):
        x = rng.normal(size=(rows_per_shard, FEATURES))
        y = (x @ TRUE_WEIGHTS > 0).astype(np.float64)
        path = directory / f"shard-{index:04d}.csv"
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow([*(f"f{i}" for i in range(FEATURES)), "label"])
            writer.writerows(np.column_stack([x, y]).round(5).tolist())
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rows", type=int, default=1000, help="rows per shard")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_shards(args.out, shards=args.shards, rows_per_shard=args.rows, seed=args.seed)


if __name__ == "__main__":
    main()
