"""Slice discovery at scale: 10,000,000 streamed rows (a 100,000-row block of Adult repeated) in bounded memory.

    python benchmarks/slice_scale.py [--quick] [--repeats N] [--chunk-rows N] [--model models/adult-mlp.pt]

The block is drawn (seeded, with replacement) from Adult's training rows and scored once by the reference model
models/adult-mlp.pt; the streamed run then feeds the block's chunks, `--repeats` times over (100: 10,000,000 rows),
to the slices tally exactly as the executor's loop feeds a streamed source, and the in-memory run audits the block
once. Every count of the streamed lattice must be `repeats` times the block's, so every slice has the same rate,
rest rate and gap; the search then has `repeats` times the rows, so it discovers at least what the block's run
discovers. Prints both runs' shown slices, the checks, the time per million rows and the peak RSS (the 1 GB goal:
the tally holds counts, not rows). --quick: 10 repeats (1,000,000 rows).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import audit  # noqa: E402
from audit.analyzers.slices.analyzer import Slices  # noqa: E402
from audit.core.groups import SensitiveValues  # noqa: E402
from audit.executor.predictions import Predictions  # noqa: E402
from audit.io.reader import TABLE_CHUNK_ROWS  # noqa: E402

BLOCK_ROWS = 100_000


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def block(checkpoint: Path, seed: int = 0):
    data = audit.load_dataset("adult", "train")
    data = data.subset(np.random.default_rng(seed).integers(0, len(data), BLOCK_ROWS))
    model = audit.load_model(checkpoint)
    return data, model.predict_proba(data, cache=False)


def streamed(analyzer: Slices, data, proba, values: SensitiveValues, repeats: int, chunk_rows: int):
    """The slices tally fed the block's chunks `repeats` times over, as the loop feeds a streamed source."""
    tally = analyzer.tally(Predictions(proba, data.classes), values, seed=0)
    start = 0
    for _ in range(repeats):
        for i in range(0, len(data), chunk_rows):
            rows = np.arange(i, min(i + chunk_rows, len(data)))
            tally.add(data.subset(rows), proba[rows], start)
            start += len(rows)
    return tally, tally.result(data.subset([]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 repeats (1,000,000 rows)")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--chunk-rows", type=int, default=TABLE_CHUNK_ROWS)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "adult-mlp.pt", help="the reference model")
    args = parser.parse_args()
    repeats = 10 if args.quick else args.repeats
    data, proba = block(args.model)
    analyzer = Slices()
    began = time.perf_counter()
    whole_tally = analyzer.tally(Predictions(proba, data.classes), SensitiveValues.of(data.sensitive), seed=0)
    whole_tally.add(data, proba, 0)
    whole = whole_tally.result(data)
    in_memory = time.perf_counter() - began
    print(f"block: {len(data):,} rows in memory, {in_memory:.1f} s, peak RSS {peak_mb():.0f} MB")

    values = SensitiveValues()
    for _ in range(repeats):  # the census of the whole stream: every sensitive value counted
        values.add(data.sensitive)
    began = time.perf_counter()
    tally, stream = streamed(analyzer, data, proba, values, repeats, args.chunk_rows)
    seconds = time.perf_counter() - began
    rows = repeats * len(data)
    print(f"stream: {rows:,} rows in chunks of {args.chunk_rows:,}, {seconds:.1f} s "
          f"({seconds / rows * 1e6:.1f} s per million rows), peak RSS {peak_mb():.0f} MB")

    same_columns = stream.details == whole.details
    same_counts = all(np.array_equal(tally.lattice.table(s), repeats * whole_tally.lattice.table(s))
                      for s in whole_tally.lattice.feature_sets)
    block_found = [(s.words, s.metric) for s in whole.summary.found]
    stream_table = stream.tables.get("slices")
    stream_discovered = set(zip(stream_table["slice"], stream_table["metric"])) if stream_table is not None else set()
    print(f"same columns and codes: {same_columns}; every count x{repeats}: {same_counts}")
    print(f"slices tested: block {whole.summary.slices_tested:,}, stream {stream.summary.slices_tested:,}; "
          f"discoveries: block {whole.summary.discovered:,}, stream {stream.summary.discovered:,}")
    print(f"the block's shown slices discovered by the stream: "
          f"{sum(f in stream_discovered for f in block_found)} of {len(block_found)}")
    for name, result in (("block", whole), ("stream", stream)):
        print(f"{name} shown slices:")
        for s in result.summary.found[:5]:
            print(f"  {s.sentence}")
    if not (same_columns and same_counts and all(f in stream_discovered for f in block_found)):
        sys.exit("the streamed run does not report the block's slices")


if __name__ == "__main__":
    main()
