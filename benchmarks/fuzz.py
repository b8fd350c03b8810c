"""Fuzz campaign: mutated checkpoints, CSVs, NPZs, image folders and policies through `audit`, counted by outcome.

    python benchmarks/fuzz.py [--checkpoints 10000] [--csvs 3000] [--npzs 2000] [--images 500] [--policies 1000]
                              [--hf-folders 2000] [--workers 2] [--seed 0]

Each case runs in a worker process whose address space is capped at 2 GB (RLIMIT_AS); a case
that takes over 60 s is a hang (its worker is killed and replaced). Checkpoints, CSVs, NPZs
and image folders go through `audit report` (the performance analyzer, in-process in the worker);
policies through audit.policy.gates's parser and an evaluation against a fixed run. Image folders
hold decompression bombs (tests/bombs.py: small files declaring up to 65535x65535 pixels in PNG,
BMP and GIF headers, first or later in the folder, with or without metadata.csv, read whole or
--stream) and mutated images of every format; policies include deep nesting (lists, inline tables,
dotted keys, up to 100,000 deep) and large files; Hugging Face folders (a saved tiny BERT with hostile
edits, tests/hf_folders.py) go through `audit report FOLDER --text-column text`. Outcomes:

    ok            exit 0 or 1 (or a policy that parsed and evaluated)
    bad input     exit 2: one line naming the problem
    traceback     exit 4, any other code, a traceback on stderr, or more than one line for a refusal
    hang          no answer within 60 s
    over 2 GB     a MemoryError or failed allocation under the cap
    crashed       the worker died (a signal)
    payload ran   a TorchScript payload's marker file appeared
    stray file    a file written outside the requested outputs
    harness error a mutator failed to build the case (a bug here, not in audit)

The mutators (tests/hostile.py) are seeded: case N of a kind is the same on every run. Not part
of the test run; tests/test_fuzz.py runs a bounded property-based version.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import multiprocessing as mp
import random
import resource
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import bombs  # noqa: E402  (tests/bombs.py: decompression bombs and nested documents)
import hf_folders  # noqa: E402  (tests/hf_folders.py: a saved tiny BERT and its mutators)
import hostile  # noqa: E402  (tests/hostile.py: seeds and mutators)

LIMIT_BYTES = 2 << 30
HANG_SECONDS = 60
OUTCOMES = ("ok", "bad input", "traceback", "hang", "over 2 GB", "crashed", "payload ran", "stray file",
            "harness error")
MEMORY_SIGNS = ("MemoryError", "can't allocate memory", "std::bad_alloc", "Cannot allocate memory")


def build_case(kind: str, index: int, seed: int, seeds: dict, folder: Path) -> tuple[list[str], Path | None]:
    """Write case `index` of `kind` into `folder`; return the `audit` arguments and the payload marker."""
    rng = random.Random(f"{seed}:{kind}:{index}")
    if kind == "images":
        return image_folder_case(rng, seeds, folder)
    if kind == "hf":
        return build_hf_case(rng, seeds, folder), None
    marker = None
    target = ["--target", "approved"]
    if kind == "checkpoint":
        roll = rng.random()
        if roll < 0.6:
            which = rng.choice(["tabular", "image"])
            model = hostile.payload_bytes(hostile.mutate_payload(seeds[which], rng))
        elif roll < 0.8:
            which, model = "tabular", hostile.mutate_bytes(seeds["tabular_bytes"], rng)
        else:
            which, marker = "tabular", seeds["marker"]
            raw = seeds["torchscript"][rng.choice(["forward", "setstate"]), rng.random() < 0.7]
            model = hostile.mutate_zip_names(raw, rng) if rng.random() < 0.3 else (
                hostile.mutate_bytes(raw, rng) if rng.random() < 0.5 else raw)
        data, name = (seeds["table_bytes"], "d.csv") if which == "tabular" else (seeds["npz_bytes"], "d.npz")
        args = target if which == "tabular" else []
    elif kind == "csv":
        model = seeds["tabular_bytes"]
        data = hostile.table_bytes(hostile.mutate_table(hostile.table(), rng))
        if rng.random() < 0.2:
            data = hostile.mutate_bytes(data, rng)
        name = "d.csv"
        args = ["--target", rng.choice(["approved", "city", "approved"]),
                *rng.choice([[], ["--sensitive", "group"], ["--sensitive", "group", "group"], ["--sensitive", "city"]])]
    else:
        model = seeds["image_bytes"]
        arrays = hostile.images()
        if rng.random() < 0.3:
            data = hostile.npz_with_header(arrays, "x", rng.choice([(125_000, 256, 256), (10**9, 8, 8), (30, 8),
                                                                   (0, 8, 8)]))
        else:
            data = hostile.npz_bytes(hostile.mutate_arrays(arrays, rng), compressed=rng.random() < 0.5)
        if rng.random() < 0.3:
            data = hostile.mutate_bytes(data, rng)
        name, args = "d.npz", []
    (folder / "model.pt").write_bytes(model)
    (folder / name).write_bytes(data)
    (folder / "out").mkdir()
    return ["report", str(folder / "model.pt"), "--data", str(folder / name), *args, "-o", str(folder / "out/r.html"),
            "--json", str(folder / "out/r.json"), "--analyzers", "performance", "--quiet"], marker


def image_folder_case(rng: random.Random, seeds: dict, folder: Path) -> tuple[list[str], None]:
    """Class folders 0, 1, 2 of 8x8 grey PNGs (the image model's input), one to three of them hostile."""
    data = folder / "imgs"
    names = []
    for label in ("0", "1", "2"):
        (data / label).mkdir(parents=True)
        for i in range(3):
            (data / label / f"{i}.png").write_bytes(seeds["png"])
            names.append(f"{label}/{i}.png")
    for _ in range(rng.randint(1, 3)):
        (data / rng.choice(names)).write_bytes(bombs.hostile_image(rng))
    args = []
    if rng.random() < 0.5:
        rows = [f"{name},{rng.choice(['a', 'b', ''])}" for name in names if rng.random() < 0.95]
        (data / "metadata.csv").write_text("file_name,site\n" + "\n".join(rows) + "\n")
        args = ["--sensitive", "site"] if rng.random() < 0.7 else []
    (folder / "model.pt").write_bytes(seeds["image_bytes"])
    (folder / "out").mkdir()
    return ["report", str(folder / "model.pt"), "--data", str(data), *args, *(["--stream"] * (rng.random() < 0.4)),
            "-o", str(folder / "out/r.html"), "--json", str(folder / "out/r.json"), "--analyzers", "performance",
            "--quiet"], None


def build_hf_case(rng: random.Random, seeds: dict, folder: Path) -> list[str]:
    """A copy of the saved tiny BERT folder with one to three hostile edits (tests/hf_folders.py), and six texts."""
    model = Path(shutil.copytree(seeds["hf"], folder / "model"))
    hf_folders.mutate_folder(model, rng)
    (folder / "r.csv").write_text(hf_folders.TEXTS, encoding="utf-8")
    (folder / "out").mkdir()
    return ["report", str(model), "--data", str(folder / "r.csv"), "--target", "label", "--text-column", "text",
            "-o", str(folder / "out/r.html"), "--json", str(folder / "out/r.json"), "--analyzers", "performance",
            "--quiet"]


def run_case(kind: str, index: int, seed: int, seeds: dict) -> str:
    from audit.cli import main

    if kind == "policy":
        return run_policy(index, seed, seeds)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        try:
            args, marker = build_case(kind, index, seed, seeds, folder)
        except Exception:  # noqa: BLE001 - a mutator's own failure is not the product's
            return "harness error"
        inputs = {p.name for p in folder.iterdir()}
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(args)
            except MemoryError:
                return "over 2 GB"
        text = err.getvalue()
        if marker is not None and marker.exists():
            marker.unlink()
            return "payload ran"
        if any(sign in text for sign in MEMORY_SIGNS):
            return "over 2 GB"
        written = {p.name for p in (folder / "out").iterdir()}
        if {p.name for p in folder.iterdir()} != inputs or written - {"r.html", "r.json"}:
            return "stray file"
        if code == 2 and len(text.strip().splitlines()) == 1 and not written:
            return "bad input"
        if code in (0, 1) and "Traceback" not in text:
            return "ok"
        return "traceback"


def run_policy(index: int, seed: int, seeds: dict) -> str:
    from audit._util.errors import AuditInputError
    from audit.policy.gates import Policy

    rng = random.Random(f"{seed}:policy:{index}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.toml"
        path.write_text(bombs.hostile_policy(rng), encoding="utf-8")
        try:
            Policy.from_toml(path).evaluate(seeds["run"])
        except AuditInputError as exc:
            return "bad input" if "\n" not in str(exc) else "traceback"
        except MemoryError:
            return "over 2 GB"
        except Exception:  # noqa: BLE001 - what the campaign counts
            return "traceback"
    return "ok"


def replay(kind: str, index: int, seed: int) -> int:
    from audit.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        args, _ = build_case(kind, index, seed, make_seeds(), Path(tmp))
        print("audit", " ".join(args), file=sys.stderr)
        return main([*args, "--debug"])


def make_seeds() -> dict:
    import audit

    tabular, image = hostile.tabular_model(), hostile.image_model()
    data = audit.Dataset.from_dataframe(hostile.table(), target="approved", sensitive=["group"])
    folder = Path(tempfile.mkdtemp(prefix="audit-fuzz-"))
    marker = folder / "marker.bin"  # where every TorchScript payload writes, should it run
    torchscript = {(where, with_task): hostile.torchscript_payload(
        folder / "ts.pt", marker, where=where, task=tabular.task.to_dict() if with_task else None).read_bytes()
        for where in ("forward", "setstate") for with_task in (True, False)}
    return {
        "marker": marker, "torchscript": torchscript,
        "tabular": hostile.payload(tabular), "image": hostile.payload(image),
        "tabular_bytes": hostile.payload_bytes(hostile.payload(tabular)),
        "image_bytes": hostile.payload_bytes(hostile.payload(image)),
        "table_bytes": hostile.table_bytes(hostile.table()),
        "npz_bytes": hostile.npz_bytes(hostile.images()),
        "png": _png_bytes(),
        "run": audit.run(tabular, data, ["performance"]),
        "hf": hf_folders.save_tiny_bert(folder / "hf"),
    }


def _png_bytes() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("L", (8, 8), 100).save(out, format="PNG")
    return out.getvalue()


def worker(conn, seed: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))
    import torch

    warnings.simplefilter("ignore")  # the mutators' own casts warn; outcomes are what counts
    torch.set_num_threads(1)
    seeds = make_seeds()
    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:
            return
        kind, index = job
        try:
            outcome = run_case(kind, index, seed, seeds)
        except MemoryError:
            outcome = "over 2 GB"
        except Exception:  # noqa: BLE001 - an exception escaping main() is a traceback
            outcome = "traceback"
        conn.send(outcome)


class Worker:
    def __init__(self, seed: int):
        self.conn, child = mp.Pipe()
        self.process = mp.get_context("fork").Process(target=worker, args=(child, seed), daemon=True)
        self.process.start()
        if not self.conn.poll(300) or self.conn.recv() != "ready":
            raise RuntimeError("a fuzz worker did not start")
        self.job = None
        self.started = 0.0

    def submit(self, job) -> None:
        self.job, self.started = job, time.monotonic()
        self.conn.send(job)

    def kill(self) -> None:
        self.process.kill()
        self.process.join()


def campaign(jobs: list[tuple[str, int]], workers: int, seed: int) -> tuple[dict, dict]:
    counts = {kind: collections.Counter() for kind in dict.fromkeys(k for k, _ in jobs)}
    examples: dict[tuple[str, str], int] = {}
    pool = [Worker(seed) for _ in range(workers)]
    pending = list(reversed(jobs))
    busy = []
    for w in pool:
        if pending:
            w.submit(pending.pop())
            busy.append(w)
    done = 0
    while busy:
        for w in list(busy):
            outcome = None
            try:
                if w.conn.poll(0.05):
                    outcome = w.conn.recv()
                elif time.monotonic() - w.started > HANG_SECONDS:
                    outcome = "hang"
            except (EOFError, OSError):
                outcome = "crashed"
            if outcome is None:
                continue
            kind, index = w.job
            counts[kind][outcome] += 1
            examples.setdefault((kind, outcome), index)
            done += 1
            if done % 1000 == 0:
                print(f"after {done}/{len(jobs)} cases:", file=sys.stderr)
                print_counts(counts, file=sys.stderr)
            if outcome in ("hang", "crashed"):
                w.kill()
                busy.remove(w)
                w = Worker(seed)
                busy.append(w)
            if pending:
                w.submit(pending.pop())
            else:
                busy.remove(w)
                w.conn.send(None)
    return counts, examples


def print_counts(counts: dict, file=sys.stdout) -> None:
    print("kind        " + "".join(f"{o:>14}" for o in OUTCOMES), file=file)
    for kind, counter in counts.items():
        print(f"{kind:<12}" + "".join(f"{counter[o]:>14}" for o in OUTCOMES), file=file, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=10_000)
    parser.add_argument("--csvs", type=int, default=3_000)
    parser.add_argument("--npzs", type=int, default=2_000)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--hf-folders", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--case", metavar="KIND:INDEX", help="rerun one case with --debug (its traceback shows)")
    args = parser.parse_args()
    if args.case:
        kind, index = args.case.split(":")
        return replay(kind, int(index), args.seed)
    sizes = {"checkpoint": args.checkpoints, "csv": args.csvs, "npz": args.npzs, "images": args.images,
             "policy": args.policies, "hf": args.hf_folders}
    jobs = [(kind, i) for kind, n in sizes.items() for i in range(n)]
    random.Random(args.seed).shuffle(jobs)  # mix slow and fast kinds across workers
    start = time.perf_counter()
    counts, examples = campaign(jobs, args.workers, args.seed)
    seconds = time.perf_counter() - start
    print(f"{len(jobs)} cases in {seconds:.0f} s ({seconds / max(len(jobs), 1) * 1000:.0f} ms per case, "
          f"{args.workers} workers, seed {args.seed})")
    print_counts(counts)
    failures = {k: v for k, v in examples.items() if k[1] not in ("ok", "bad input")}
    for (kind, outcome), index in sorted(failures.items()):
        print(f"first {outcome}: {kind} case {index} (seed {args.seed})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
