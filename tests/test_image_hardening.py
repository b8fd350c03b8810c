"""Image folders with decompression bombs: a small file declaring a huge image is refused from its header, in one
line (exit 2) naming the file and the limit, before Pillow decodes a pixel; whole and streamed reads alike."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

import bombs
import hostile
from audit.cli import main
from audit.io import images

CLASSES = ("0", "1", "2")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return hostile.save_payload(hostile.payload(hostile.image_model()), tmp_path_factory.mktemp("m") / "cnn.pt")


def folder(root: Path, bomb: bytes | None = None, *, first: bool = False) -> Path:
    """Class folders 0, 1, 2 of three 8x8 grey images each; `bomb` as the first image, or one in the middle."""
    for label in CLASSES:
        (root / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8), "L").save(root / label / f"{i}.png")
    if bomb is not None:
        (root / ("0/0.png" if first else "1/1.png")).write_bytes(bomb)
    return root


@pytest.fixture
def decoded(monkeypatch) -> list[int]:
    """The pixel counts of the images Pillow decodes."""
    sizes: list[int] = []
    load = ImageFile.ImageFile.load

    def counted(self):
        sizes.append(self.size[0] * self.size[1])
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counted)
    return sizes


def report(model: Path, data: Path, tmp_path: Path, *extra: str) -> int:
    return main(["report", str(model), "--data", str(data), "-o", str(tmp_path / "r.html"), "--analyzers",
                 "performance", "--quiet", *extra])


ISSUE_BOMBS = {"30000x30000 grey": (30000, 30000, 1), "12000x12000 RGB": (12000, 12000, 3),
               "9000x9000 grey": (9000, 9000, 1)}


@pytest.mark.parametrize("first", [True, False], ids=["first image", "later image"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("size", ISSUE_BOMBS.values(), ids=ISSUE_BOMBS.keys())
def test_issue_bombs_are_refused_before_decoding(model, tmp_path, capsys, decoded, size, stream, first):
    bomb = bombs.png(*size)
    assert len(bomb) < 1_000_000  # small files, as in the issue (110 KB, 420 KB, 79 KB)
    data = folder(tmp_path / "imgs", bomb, first=first)
    code = report(model, data, tmp_path, *(["--stream"] if stream else []))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert ("0/0.png" if first else "1/1.png") in err and "limit" in err and "Traceback" not in err
    assert max(decoded, default=0) <= 64  # only the 8x8 images were ever decoded
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_the_same_folder_without_the_bomb_is_read(model, tmp_path, capsys, decoded, stream):
    code = report(model, folder(tmp_path / "imgs"), tmp_path, *(["--stream"] if stream else []))
    assert code in (0, 1), capsys.readouterr().err
    assert decoded and max(decoded) == 64


def test_bytes_as_float32_are_bounded_below_pillows_pixel_guard(model, tmp_path, capsys, decoded):
    """5000x5000 RGB is 25M pixels (Pillow would decode it) but 300 MB as float32: over the per-image limit."""
    code = report(model, folder(tmp_path / "imgs", bombs.png(5000, 5000, 3)), tmp_path)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "5,000x5,000" in err and "286 MiB" in err and f"{images.MAX_IMAGE_BYTES >> 20} MiB" in err
    assert max(decoded) <= 64


def test_the_limit_counts_channels_and_bytes(monkeypatch, model, tmp_path, capsys):
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 8 * 8 * 4)  # one 8x8 grey image, exactly
    assert report(model, folder(tmp_path / "grey"), tmp_path) in (0, 1)
    rgb = folder(tmp_path / "rgb")
    Image.new("RGB", (8, 8)).save(rgb / "2" / "2.png")  # converted to grey, but decoded with three bands
    capsys.readouterr()
    assert report(model, rgb, tmp_path) == 2
    assert "2/2.png: image of 8x8 pixels (3 channel(s))" in capsys.readouterr().err


def test_only_image_formats_are_decoded_whatever_the_suffix(model, tmp_path, capsys):
    data = folder(tmp_path / "imgs")
    Image.new("L", (8, 8)).save(data / "1" / "1.png", format="ICO")  # a format whose size can change on load
    assert report(model, data, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "1/1.png: cannot read as an image" in err, err


def test_pillows_global_limit_is_left_as_it_was(model, tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    report(model, folder(tmp_path / "imgs", bombs.png(30000, 30000)), tmp_path)
    assert Image.MAX_IMAGE_PIXELS == before


def test_a_bomb_is_refused_before_it_takes_memory(tmp_path):
    """The 79 KB 9000x9000 grey PNG took 1.3 GB before it was refused; the read now adds next to nothing."""
    data = folder(tmp_path / "imgs", bombs.png(9000, 9000))
    script = ("import resource, sys; from pathlib import Path; from audit._util.errors import AuditInputError; "
              "from audit.io.images import ImageFolder; import PIL.Image\n"
              "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "try: list(ImageFolder(Path(sys.argv[1]), target=None, sensitive=[], text_column=None)"
              ".parts(None, None))\n"
              "except AuditInputError as exc: print(exc, file=sys.stderr)\n"
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    env = {**os.environ, "PYTHONPATH": str(Path(images.__file__).parents[2])}
    done = subprocess.run([sys.executable, "-c", script, str(data)], capture_output=True, text=True, env=env,
                          check=True)
    assert "1/1.png" in done.stderr and "limit" in done.stderr, done.stderr
    added_mb = int(done.stdout) / 1024  # ru_maxrss is in KiB on Linux
    assert added_mb < 50, added_mb  # decoding the bomb to float32 takes over 400 MB


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(rng=st.randoms(use_true_random=False))
def test_hostile_image_folders_exit_0_1_or_2_in_one_line(model, tmp_path_factory, capsys, rng: random.Random):
    """A bounded slice of benchmarks/fuzz.py's image family: bombs, mutated images, with or without --stream."""
    root = tmp_path_factory.mktemp("fuzz")
    data = folder(root / "imgs")
    for _ in range(rng.randint(1, 3)):
        (data / rng.choice(CLASSES) / f"{rng.randrange(3)}.png").write_bytes(bombs.hostile_image(rng))
    capsys.readouterr()
    code = report(model, data, root, *(["--stream"] * (rng.random() < 0.4)))
    err = capsys.readouterr().err.strip()
    assert code in (0, 1, 2) and "Traceback" not in err, err
    if code == 2:
        assert len(err.splitlines()) == 1 and not (root / "r.html").exists(), err
