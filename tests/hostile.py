"""Hostile model and data files: tiny valid seeds, TorchScript payloads, and seeded mutators.

Shared by the trust-boundary tests, the property-based fuzz tests (tests/test_fuzz.py) and
the longer fuzz campaign (benchmarks/fuzz.py). Every mutator is a function of a
`random.Random`, so a seed reproduces a case.
"""

from __future__ import annotations

import copy
import io
import json
import math
import random
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import audit
from audit.io import checkpoint
from audit.core.encoders import ImageEncoder, TabularEncoder
from audit.models import MODELS

COLUMNS = ("income", "years", "city")


def tabular_model(seed: int = 0) -> audit.Model:
    """An untrained MLP over two numeric columns and one categorical column (seeded weights)."""
    torch.manual_seed(seed)
    encoder = TabularEncoder(numeric=("income", "years"), means=(50.0, 10.0), stds=(10.0, 5.0),
                             lows=(0.0, 0.0), highs=(100.0, 30.0), categorical={"city": ("north", "south")})
    config = {"in_features": 4, "num_classes": 2, "hidden": [4], "dropout": 0.1}
    task = audit.Task(modality="tabular", classes=("no", "yes"), encoder=encoder,
                      dataset={"target": "approved", "sensitive": ["group"]}, sensitive=("group",))
    return audit.Model(MODELS.create("mlp", **config), task, architecture="mlp", config=config, device="cpu")


def image_model(seed: int = 0) -> audit.Model:
    """An untrained CNN over 1x8x8 images in [0, 1], three classes."""
    torch.manual_seed(seed)
    config = {"in_channels": 1, "height": 8, "width": 8, "num_classes": 3, "channels": [2], "hidden": 4}
    task = audit.Task(modality="image", classes=("0", "1", "2"), encoder=ImageEncoder(shape=(1, 8, 8)))
    return audit.Model(MODELS.create("cnn", **config), task, architecture="cnn", config=config, device="cpu")


def payload(model: audit.Model) -> dict:
    """The plain-data checkpoint `checkpoint.save` writes for `model`."""
    return {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "architecture": model.architecture,
            "config": copy.deepcopy(model.config),
            "state_dict": {k: v.detach().clone() for k, v in model.module.state_dict().items()},
            "task": model.task.to_dict()}


def payload_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_payload(obj, path: Path) -> Path:
    path.write_bytes(payload_bytes(obj))
    return path


def table(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"income": rng.normal(50, 10, n).round(2), "years": rng.integers(0, 30, n),
                          "city": rng.choice(["north", "south"], n), "group": rng.choice(["a", "b"], n)})
    frame["approved"] = np.where(frame["income"] > 50, "yes", "no")
    return frame


def images(n: int = 30, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.random((n, 8, 8)).astype(np.float32), "y": np.arange(n) % 3, "site": np.arange(n) % 2}


# -- TorchScript that runs code: torch.from_file(path, shared=True) creates and writes any file ----------


class WritesInForward(torch.nn.Module):
    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        written = torch.from_file(self.marker, shared=True, size=8, dtype=torch.uint8)
        written.fill_(88)
        return self.linear(x) + written.sum().float() * 0  # used, so TorchScript keeps the write


class WritesInSetstate(torch.nn.Module):
    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker
        self.weight = torch.nn.Parameter(torch.ones(2, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.t()

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, str, bool]:
        return self.weight, self.marker, self.training

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]) -> None:
        written = torch.from_file(state[1], shared=True, size=8, dtype=torch.uint8)
        written.fill_(88)
        self.weight = state[0]
        self.marker = state[1] + str(int(written.sum()))  # used, so TorchScript keeps the write
        self.training = state[2]


SCRIPTED = {"forward": torch.jit.script(WritesInForward("")), "setstate": torch.jit.script(WritesInSetstate(""))}


def torchscript_payload(path: Path, marker: Path, *, where: str, task: dict | None) -> Path:
    """A TorchScript archive whose `forward` or `__setstate__` (on load) writes `marker`.

    Both modules are compiled once, at import: TorchScript keeps one class per qualified name.
    """
    scripted = SCRIPTED[where]
    scripted.marker = str(marker)
    extra = {checkpoint.TASK_FILE: json.dumps(task)} if task is not None else {}
    torch.jit.save(scripted, str(path), _extra_files=extra)
    return path


# -- mutators ------------------------------------------------------------------------------------------


def hostile_value(rng: random.Random):
    """A value of the wrong type or range for any field of a checkpoint."""
    choices = [
        None, True, -1, 0, 10**7, 10**30, -(2**63), 2**63, 0.5, -0.5, 1.5, math.nan, math.inf, -math.inf, "",
        "x" * 1000, "\x00\udcff", b"bytes", [], [1, 2], [[1]], {}, {1: 2}, {"a": math.nan}, (1,),
        torch.tensor(1.0), torch.zeros(3), torch.tensor([math.nan]), torch.zeros(0),
        torch.zeros(2, 2, dtype=torch.int64),
        [10**7], [-5], [0], _deep(rng.choice([40, 200])), {"kind": "tabular"}, {"kind": "image", "shape": [1, 8, 8],
                                                                              "low": math.nan, "high": 1.0},
    ]
    return copy.deepcopy(rng.choice(choices))


def _deep(depth: int):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def mutate_payload(obj: dict, rng: random.Random) -> dict:
    """`obj` with one to three fields replaced, deleted, or their tensors reshaped or poisoned."""
    obj = copy.deepcopy(obj)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(obj) if p]
        path = rng.choice(paths)
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        action = rng.random()
        if action < 0.15 and isinstance(parent, dict):
            del parent[key]
        elif action < 0.3 and isinstance(parent[key], torch.Tensor):
            t = parent[key]
            options = [t.flatten(), t.double(), t.to(torch.int32), torch.zeros(*(s + 1 for s in t.shape))]
            options += [torch.full_like(t, math.nan)] if t.is_floating_point() else []
            options += [t[..., :0]] if t.dim() else []
            parent[key] = rng.choice(options)
        elif action < 0.4 and isinstance(parent, dict):
            parent[rng.choice(["extra", 7, "0.weight", ("t",)])] = hostile_value(rng)
        else:
            parent[key] = hostile_value(rng)
    return obj


def mutate_bytes(raw: bytes, rng: random.Random) -> bytes:
    """`raw` with a few bytes flipped, a span cut, inserted or truncated."""
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        at = rng.randrange(len(data))
        action = rng.random()
        if action < 0.5:
            data[at] = rng.randrange(256)
        elif action < 0.7:
            del data[at : at + rng.randint(1, 64)]
        elif action < 0.85:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        else:
            del data[at:]
    return bytes(data)


def mutate_zip_names(raw: bytes, rng: random.Random) -> bytes:
    """A zip archive whose entry names are rewritten: non-UTF-8 bytes, TorchScript-like names."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are part of the attack
        for info in src.infolist():
            name = info.filename
            if rng.random() < 0.3:
                name = rng.choice([name.replace("data.pkl", "constants.pkl"), name + "\udcff",
                                   name.split("/")[0] + "/code/__torch__.py", "../" + name])
            try:
                dst.writestr(name, src.read(info))
            except UnicodeEncodeError:
                dst.writestr(name.encode("utf-8", "surrogateescape").decode("cp437"), src.read(info))
    return out.getvalue()


CELLS = ["1e308", "-1e308", "nan", "inf", "-inf", "", "NaN", "x", "1e-320", "9" * 400, '"', "a,b", "\x00",
         "\udcff", "yes", "no", "maybe", "0x10", "True"]


def mutate_table(frame: pd.DataFrame, rng: random.Random) -> pd.DataFrame:
    """`frame` with cells replaced by hostile text, columns dropped, renamed or duplicated."""
    frame = frame.astype(object).copy()
    for _ in range(rng.randint(1, 4)):
        action = rng.random()
        if action < 0.6 and len(frame):
            frame.iat[rng.randrange(len(frame)), rng.randrange(frame.shape[1])] = rng.choice(CELLS)
        elif action < 0.7 and frame.shape[1] > 1:
            gone = rng.randrange(frame.shape[1])
            frame = frame.iloc[:, [i for i in range(frame.shape[1]) if i != gone]]
        elif action < 0.8:
            frame.columns = pd.Index([rng.choice([*CELLS, c]) if rng.random() < 0.3 else c for c in frame.columns],
                                     dtype=object)
        elif action < 0.9:
            frame = frame.iloc[: rng.randint(0, len(frame))]
        else:
            frame[rng.choice(list(frame.columns))] = pd.Series([rng.choice(CELLS)] * len(frame), dtype=object)
    return frame


def table_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode("utf-8", "surrogateescape")


def mutate_arrays(arrays: dict[str, np.ndarray], rng: random.Random) -> dict[str, np.ndarray]:
    """Image arrays with poisoned values, wrong shapes, dtypes, or arrays missing or added."""
    arrays = {k: v.copy() for k, v in arrays.items()}
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(list(arrays))
        v = arrays[key]
        action = rng.random()
        if action < 0.3 and v.size and v.dtype.kind in "biuf":
            v = v.astype(np.float64)
            v.flat[rng.randrange(v.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e308, -1e39, 255.0])
        elif action < 0.5:
            reshaped = [v[None], v.astype(str), np.zeros(()), v.T]
            if v.ndim:
                reshaped += [v[:0], v[:-1]] + ([v.reshape(len(v), -1)] if v.size else [])
            if v.dtype.kind in "biuf":
                reshaped += [v.astype(np.complex64), v.astype(np.float16), v.astype(bool)]
            v = rng.choice(reshaped)
        elif action < 0.6:
            del arrays[key]
            continue
        else:
            rows = len(arrays["y"]) if "y" in arrays and arrays["y"].ndim else 2
            arrays[rng.choice(["z", key])] = rng.choice([np.zeros(3), np.arange(rows), np.array(["a"])])
            continue
        arrays[key] = v
    return arrays


def npz_bytes(arrays: dict[str, np.ndarray], *, compressed: bool = False) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def npz_with_header(arrays: dict[str, np.ndarray], key: str, shape: tuple[int, ...]) -> bytes:
    """An NPZ whose member `key` declares `shape` in its header but holds the original data."""
    raw = npz_bytes(arrays)
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == f"{key}.npy":
                header = repr(shape).encode()
                old = repr(arrays[key].shape).encode()
                data = data.replace(old, header.ljust(len(old)) if len(header) <= len(old) else header, 1)
            dst.writestr(info.filename, data)
    return out.getvalue()


POLICY_VALUES = ["0.5", "nan", "inf", "-1", "5", '"upper"', '"sideways"', "true", "[1, 2]", "{ a = 1 }", '""',
                 "1e400", "0"]
POLICY_KEYS = ["min", "max", "use", "if_applicable", "max_decrease", "bogus"]
METRICS = ["performance.accuracy", "performance.balanced_accuracy", "performance.ece", "fairness.x.y", "bogus"]


def mutated_policy(rng: random.Random) -> str:
    """A policy file built from hostile keys, values and metric names (and sometimes garbled bytes)."""
    lines = []
    if rng.random() < 0.1:
        lines.append(f"gates = {rng.choice(POLICY_VALUES)}")
    for _ in range(rng.randint(0, 3)):
        lines.append(f'[gates."{rng.choice(METRICS)}"]')
        for _ in range(rng.randint(0, 3)):
            lines.append(f"{rng.choice(POLICY_KEYS)} = {rng.choice(POLICY_VALUES)}")
    text = "\n".join(lines) + "\n"
    if rng.random() < 0.1:
        text = mutate_bytes(text.encode(), rng).decode("utf-8", "replace")
    return text
