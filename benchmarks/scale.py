"""Streamed audits at scale: peak memory, rows per second, and the same numbers as in memory.

    python benchmarks/scale.py [--rows 10000000] [--text-mb 50] [--images 100000]
                               [--only table,text,images,default] [--default-rows 3000000,10000000] [--model PT]
                               [--dir DIR] [--keep]

Four runs, each in its own process (its peak RSS is its own, from resource.getrusage):

- table: an adult-like Parquet table of --rows rows, 100 copies of one seeded block of --rows/100 rows
  with a planted disparity (the label favours men; race has no effect), audited streamed with performance
  and fairness. Goal: peak RSS under 1 GB; the metrics equal (to 1e-9) those of an in-memory run on
  the block alone: every metric is a rate, and the copies scale every count by 100 (the intervals,
  which narrow with more rows, are not compared; nor is the threshold preview, fitted on a sample).
  Fairness counts every group however small (min_group_size = min_positives = 1), so that a group
  below the minimum in the block but above it in the copies does not change what is compared;
- text: a CSV of about --text-mb MB of sentences with a sensitive column, audited streamed with
  performance and fairness by a small LSTM (seeded, untrained): it runs to the end, with progress;
- images: --images PNG images in class folders (16x16 grey, 10 classes; the class sets the brightness) and a
  metadata.csv giving each image a group and a site. Planted: the images of group b vary more in brightness,
  so a nearest-brightness model errs more on them; site has no effect. Audited with performance and
  fairness, streamed and in memory: the metrics equal to 1e-9, the group's accuracy gap is found (interval
  above 0) and the site's is not;
- default: `audit report MODEL --data big.parquet --target income --sensitive sex race age --analyzers
  performance,fairness` (MODEL: --model, default models/adult-mlp.pt) with default flags, then with --stream, on
  Parquet files of the adult rows (train and test) repeated to each of --default-rows rows, in row groups of
  100,000. Goal: peak RSS under 1 GB with default flags (the automatic choice streams by the rows' size in
  memory, not the file's bytes) and every metric and interval equal to the --stream run's. The copies of the
  adult rows are named in a finding (the duplicate count).

The machine's other work slows the rows per second; the memory and the numbers do not depend on it.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
GOAL_RSS = 1 << 30
COPIES = 100
CLASSES = ("<=50K", ">50K")
SENSITIVE = ["sex", "race", "age"]
WORDS = ("the service was good and the staff were kind but the food came late and cold while the room "
         "felt clean quiet and bright yet the price seemed high for what we got overall").split()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--text-mb", type=float, default=50.0)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--only", default="table,text,images,default")
    parser.add_argument("--default-rows", default="3000000,10000000")
    parser.add_argument("--model", default=str(ROOT / "models" / "adult-mlp.pt"), help="the adult checkpoint")
    parser.add_argument("--dir", help="where the generated data go (default: a temporary folder, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, Path(args.dir), args)
    folder = Path(args.dir or tempfile.mkdtemp(prefix="audit-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    failed = False
    try:
        for kind in [k.strip() for k in args.only.split(",") if k.strip()]:
            if kind == "default":
                failed |= not default_flags(folder, [int(n) for n in args.default_rows.split(",")], args.model)
                continue
            start = time.perf_counter()
            generate(kind, folder, args)
            print(f"{kind}: data generated in {time.perf_counter() - start:.0f} s", flush=True)
            runs = ["stream", "memory"] if kind in ("table", "images") else ["stream"]
            out = {}
            for mode in runs:
                out[mode] = spawn(f"{kind}-{mode}", folder, args)
                line = out[mode]
                print(f"{kind} {mode}: {line['rows']:,} rows in {line['seconds']:.0f} s, {line['rows_per_second']:,.0f} "
                      f"rows/s, peak RSS {line['peak_rss'] / 2**20:,.0f} MiB"
                      + (f" (goal under {GOAL_RSS / 2**20:,.0f} MiB: "
                         f"{'met' if line['peak_rss'] < GOAL_RSS else 'NOT MET'})" if mode == "stream" else ""),
                      flush=True)
                for name, status in line["status"].items():
                    print(f"    {name}: {status}")
            if kind == "table":
                failed |= not compare(kind, out["stream"]["metrics"], out["memory"]["metrics"], TABLE_SHOWN)
            elif kind == "images":
                failed |= not compare(kind, out["stream"]["metrics"], out["memory"]["metrics"], IMAGES_SHOWN)
                failed |= not planted_found(out["stream"]["intervals"])
            else:
                print(f"    metrics: {json.dumps({k: round(v, 4) for k, v in out['stream']['metrics'].items() if k.count('.') == 1})}")
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0


TABLE_SHOWN = ("performance.accuracy", "performance.ece", "fairness.sex.demographic_parity_difference",
               "fairness.race.demographic_parity_difference", "fairness.sex&race.equalized_odds_difference")
IMAGES_SHOWN = ("performance.accuracy", "performance.ece", "fairness.group.accuracy_difference",
                "fairness.site.accuracy_difference", "fairness.group&site.accuracy_difference")


def compare(kind: str, streamed: dict, memory: dict, shown: tuple[str, ...]) -> bool:
    names = sorted(memory)
    diffs = [abs(streamed[n] - memory[n]) for n in names if not (np.isnan(memory[n]) and np.isnan(streamed[n]))]
    same = set(streamed) == set(memory) and max(diffs) <= 1e-9
    print(f"{kind}: {len(names)} metrics, largest difference streamed vs in memory "
          f"{'(block) ' if kind == 'table' else ''}{max(diffs):.2e} ({'same to 1e-9' if same else 'DIFFERENT'})")
    for name in shown:
        print(f"    {name}: streamed {streamed[name]:.12f}, in memory {memory[name]:.12f}")
    return same


def planted_found(intervals: dict) -> bool:
    """The group's accuracy gap (planted) has an interval above 0; the site's (none planted) reaches 0."""
    group, site = intervals["fairness.group.accuracy_difference"], intervals["fairness.site.accuracy_difference"]
    found = group[0] > 0 and site[0] == 0
    print(f"images: accuracy gap by group (planted) {group[0]:.3f} to {group[1]:.3f}, by site (none) {site[0]:.3f} to "
          f"{site[1]:.3f}: {'as planted' if found else 'NOT AS PLANTED'}")
    return found


def default_flags(folder: Path, sizes: list[int], model: str) -> bool:
    """`audit report` with default flags and with --stream on the adult rows repeated: peak RSS and the same
    numbers."""
    ok = True
    for rows in sizes:
        path = folder / f"adult-{rows}.parquet"
        adult_rows(path, rows)
        print(f"default: {rows:,} adult rows, {path.stat().st_size / 1e6:.1f} MB of Parquet", flush=True)
        out = {}
        for flags in ([], ["--stream"]):
            name = "--stream" if flags else "default flags"
            out[name] = report(model, path, flags, folder / f"{path.stem}{''.join(flags)}.json")
            line = out[name]
            met = line["peak_rss"] < GOAL_RSS
            ok &= met
            print(f"    {name}: {line['seconds']:.0f} s, peak RSS {line['peak_rss'] / 2**20:,.0f} MiB (goal under "
                  f"{GOAL_RSS / 2**20:,.0f} MiB: {'met' if met else 'NOT MET'}), streamed: {line['streamed']}, "
                  f"exit {line['code']}", flush=True)
        first, second = out["default flags"]["json"], out["--stream"]["json"]
        same = first["metrics"] == second["metrics"] and first["intervals"] == second["intervals"]
        ok &= same
        print(f"    {len(first['metrics'])} metrics and {len(first['intervals'])} intervals: "
              f"{'equal' if same else 'DIFFERENT'}; performance finding: "
              f"{[f['sentence'] for f in first['results']['performance']['findings']]}")
    return ok


def adult_rows(path: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(ROOT))
    from audit.io.builtin import _read_adult

    adult = pd.concat([_read_adult("adult.data.gz", skiprows=0), _read_adult("adult.test.gz", skiprows=1)],
                      ignore_index=True)
    group = 100_000
    with pq.ParquetWriter(path, pa.Table.from_pandas(adult.head(1), preserve_index=False).schema) as writer:
        for start in range(0, rows, group):
            index = np.arange(start, min(start + group, rows)) % len(adult)
            writer.write_table(pa.Table.from_pandas(adult.iloc[index], preserve_index=False))


def report(model: str, path: Path, flags: list[str], out: Path) -> dict:
    """One `audit report` in its own process: its exit code, seconds, peak RSS and JSON document."""
    command = [sys.executable, "-c", "import resource, sys; from audit.cli import main; code = main(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024); sys.exit(code)",
               "report", model, "--data", str(path), "--target", "income", "--sensitive", "sex", "race", "age",
               "--analyzers", "performance,fairness",
               "-o", str(out.with_suffix(".html")), "--json", str(out), "--quiet", *flags]
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    if done.returncode not in (0, 1):
        raise SystemExit(f"audit report {' '.join(flags)} failed ({done.returncode})")
    document = json.loads(out.read_text())
    return {"code": done.returncode, "seconds": time.perf_counter() - start,
            "peak_rss": int(done.stdout.strip().splitlines()[-1]), "json": document,
            "streamed": bool(document["data"]["source"].get("streamed"))}


def spawn(what: str, folder: Path, args) -> dict:
    command = [sys.executable, __file__, "--child", what, "--dir", str(folder), "--rows", str(args.rows),
               "--text-mb", str(args.text_mb), "--images", str(args.images)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)  # stderr: the progress lines
    if done.returncode != 0:
        raise SystemExit(f"{what} failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- data ---------------------------------------------------------------------------------------------


def block(n: int, seed: int = 0) -> pd.DataFrame:
    """Adult-like rows: the label favours men (planted), race has no effect."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["Female", "Male"], n, p=[0.33, 0.67])
    male = (sex == "Male").astype(float)
    education, hours = rng.integers(1, 17, n).astype(float), rng.normal(40, 12, n).round()
    age = rng.integers(17, 91, n)
    score = 0.35 * (education - 10) + 0.04 * (hours - 40) + 0.03 * (age - 38) + 1.2 * male - 1.3
    label = score + rng.logistic(size=n) > 0
    return pd.DataFrame({"education_num": education, "hours_per_week": hours, "male": male, "age": age,
                         "sex": sex, "race": rng.choice(["White", "Black", "Asian-Pac-Islander", "Other"], n,
                                                        p=[0.85, 0.1, 0.03, 0.02]),
                         "income": np.where(label, CLASSES[1], CLASSES[0])})


def generate(kind: str, folder: Path, args) -> None:
    if kind == "table":
        import pyarrow as pa
        import pyarrow.parquet as pq

        base = block(args.rows // COPIES)
        base.to_parquet(folder / "block.parquet")
        table = pa.Table.from_pandas(base, preserve_index=False)
        with pq.ParquetWriter(folder / "big.parquet", table.schema) as writer:
            for _ in range(COPIES):
                writer.write_table(table)
    elif kind == "text":
        rng = np.random.default_rng(0)
        with open(folder / "text.csv", "w") as f:
            f.write("text,label,group\n")
            while f.tell() < args.text_mb * 1e6:
                n = 10_000
                lengths = rng.integers(8, 30, n)
                words = rng.choice(WORDS, (n, 30))
                group = rng.choice(["a", "b"], n)
                label = np.where(rng.random(n) < np.where(group == "b", 0.6, 0.4), "pos", "neg")
                f.writelines(f"{' '.join(w[:k])},{y},{g}\n" for w, k, y, g in zip(words, lengths, label, group))
    elif kind == "images":
        from PIL import Image

        rng = np.random.default_rng(0)
        rows = {"file_name": [], "group": [], "site": []}
        for i in range(args.images):
            label, group, site = i % 10, rng.choice(["a", "b"]), rng.choice(["north", "south", "west"])
            (folder / "images" / str(label)).mkdir(parents=True, exist_ok=True)
            shift = rng.normal(0, 8 if group == "b" else 2)  # planted: group b's brightness varies more
            pixels = np.clip(rng.normal(12 * label + 60 + shift, 30, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "L").save(folder / "images" / str(label) / f"{i:06d}.png")
            for key, value in zip(rows, (f"{label}/{i:06d}.png", group, site)):
                rows[key].append(value)
        pd.DataFrame(rows).to_csv(folder / "images" / "metadata.csv", index=False)


# -- one run, in its own process -------------------------------------------------------------------


def nearest_brightness():
    """A model that gives each image the class whose brightness (12 * class + 60 of 255) is nearest its mean."""
    import torch

    class NearestBrightness(torch.nn.Module):
        def forward(self, x):
            level = x.mean(dim=(1, 2, 3)) * 255
            return -((level[:, None] - (12 * torch.arange(10, dtype=x.dtype) + 60)) / 4) ** 2

    return NearestBrightness()


def child(what: str, folder: Path, args) -> int:
    sys.path.insert(0, str(ROOT))
    import torch

    import audit
    from audit.analyzers.fairness.analyzer import Fairness
    from audit.analyzers.performance.analyzer import Performance
    from audit.core.encoders import TabularEncoder, Tokenizer
    from audit.io.sources import read_data
    from audit.models import MODELS

    torch.manual_seed(0)
    analyzers = [Performance(), Fairness()]
    if what.startswith("table"):
        # every group counts, however small in the block: the block and its copies then compare the same groups
        analyzers = [Performance(), Fairness(min_group_size=1, min_positives=1)]
        layer = torch.nn.Linear(4, 2)
        with torch.no_grad():
            layer.weight[:] = torch.tensor([[0.0] * 4, [0.35, 0.04, 1.2, 0.03]])
            layer.bias[:] = torch.tensor([0.0, -1.3 - 3.5 - 1.6 - 1.14])
        model = audit.wrap(layer, modality="tabular", classes=CLASSES, device="cpu",
                           encoder=TabularEncoder(numeric=("education_num", "hours_per_week", "male", "age"),
                                                  passthrough=True))
        source_path = folder / ("big.parquet" if what == "table-stream" else "block.parquet")
        options = dict(target="income", sensitive=SENSITIVE)
    elif what == "text-stream":
        tokenizer = Tokenizer(vocab=("<pad>", "<unk>", *sorted(set(WORDS))), max_length=32)
        config = {"vocab_size": len(tokenizer.vocab), "num_classes": 2, "max_length": 32, "embed_dim": 16,
                  "hidden": 16}
        task = audit.Task(modality="text", classes=("neg", "pos"), encoder=tokenizer)
        model = audit.Model(MODELS.create("lstm", **config), task, architecture="lstm", config=config, device="cpu")
        source_path, options = folder / "text.csv", dict(target="label", sensitive=["group"], text_column="text")
    else:
        model = audit.wrap(nearest_brightness(), modality="image", classes=tuple(map(str, range(10))), device="cpu")
        source_path, options = folder / "images", dict(sensitive=["group", "site"])
    start = time.perf_counter()
    if what.endswith("memory"):
        data = read_data(source_path, classes=model.classes, **options)
        run = audit.run(model, data, analyzers)
    else:
        run = audit.run_stream(model, audit.open_source(source_path, **options), analyzers)
    seconds = time.perf_counter() - start
    rows = run.data["rows"]
    print(json.dumps({"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds,
                      "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "metrics": run.metrics, "intervals": run.intervals,
                      "status": {r.analyzer: r.status + (f" ({r.error})" if r.error else "")
                                 + (f" ({r.details.get('reason')})" if r.status == "skipped" else "")
                                 for r in run.results}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
