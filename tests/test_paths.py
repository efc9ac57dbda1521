"""Path fields read from a user's file: every way a path can be bad is one line, exit 2, nothing written."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from headcast.cli import main
from headcast.errors import HeadcastError
from headcast.paths import resolve_input_file


def _too_long_name(folder: Path) -> str:
    return "a" * 300 + ".png"


def _too_long_path(folder: Path) -> str:
    return "a/" * 2100 + "x.png"


def _nul_byte(folder: Path) -> str:
    return "image\x00.png"


def _symlink_loop(folder: Path) -> str:
    os.symlink("loop-b.png", folder / "loop-a.png")
    os.symlink("loop-a.png", folder / "loop-b.png")
    return "loop-a.png"


def _dangling_link(folder: Path) -> str:
    os.symlink("gone.png", folder / "dangling.png")
    return "dangling.png"


def _device_node(folder: Path) -> str:
    return os.devnull


def _fifo(folder: Path) -> str:
    os.mkfifo(folder / "pipe.png")
    return "pipe.png"


def _folder(folder: Path) -> str:
    (folder / "dir.png").mkdir()
    return "dir.png"


def _missing(folder: Path) -> str:
    return "missing.png"


BAD_PATHS: dict[str, tuple[Callable[[Path], str], str]] = {
    "too long a name": (_too_long_name, "over the file system's"),
    "too long a path": (_too_long_path, "is longer than the file system's"),
    "a NUL byte": (_nul_byte, "holds a NUL byte"),
    "a symlink loop": (_symlink_loop, "is a symlink loop"),
    "a dangling link": (_dangling_link, "is a dangling symlink"),
    "a device node": (_device_node, "is a device node"),
    "a FIFO": (_fifo, "is a FIFO"),
    "a folder": (_folder, "is a folder"),
    "a missing file": (_missing, "does not exist"),
}


@pytest.mark.parametrize("case", BAD_PATHS)
def test_the_resolver_refuses_each_kind_of_bad_path_naming_the_field(tmp_path, case):
    make, expected = BAD_PATHS[case]
    with pytest.raises(HeadcastError) as caught:
        resolve_input_file(tmp_path, make(tmp_path), "probes.jsonl:7: image")
    message = str(caught.value)
    assert message.startswith("probes.jsonl:7: image ") and expected in message
    assert "\n" not in message and "; " in message  # the problem, then the fix


def test_the_resolver_follows_a_good_link_to_the_regular_file(tmp_path):
    (tmp_path / "real.png").write_bytes(b"pixels")
    os.symlink("real.png", tmp_path / "link.png")
    assert resolve_input_file(tmp_path, "link.png", "image") == (tmp_path / "real.png").resolve()
    absolute = str(tmp_path / "real.png")
    assert resolve_input_file(tmp_path / "elsewhere", absolute, "image") == Path(absolute).resolve()


def _one_line_failure(capsys, argv: list[str], out: Path) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("headcast: error: ")
    assert not out.exists()
    return err[0]


@pytest.mark.parametrize("case", BAD_PATHS)
def test_a_probe_image_path_of_each_bad_kind_is_one_line(
    capsys, tmp_path, tiny_checkpoint, tiny_probes, case
):
    make, expected = BAD_PATHS[case]
    item = json.loads(tiny_probes.read_text().splitlines()[0]) | {"image": make(tmp_path)}
    probes = tmp_path / "bad.jsonl"
    probes.write_text(json.dumps(item) + "\n")
    out = tmp_path / "out" / "features.parquet"
    argv = ["extract", str(tiny_checkpoint("llava-1.5-7b")), "--probes", str(probes), "--out", str(out)]
    message = _one_line_failure(capsys, [*argv, "--quiet"], out)
    assert f"{probes}:1: image" in message and expected in message


@pytest.mark.parametrize("case", BAD_PATHS)
def test_a_dataset_file_name_of_each_bad_kind_is_one_line(capsys, tmp_path, case):
    make, expected = BAD_PATHS[case]
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    Image.new("RGB", (8, 8)).save(dataset / "good.png")
    rows = [{"file_name": "good.png", "question": "q?"}, {"file_name": make(dataset), "question": "q?"}]
    (dataset / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "probes"
    argv = ["probes", "build", "--dataset", str(dataset), "--image-column", "image"]
    argv += ["--question-column", "question", "--n", "2", "--out", str(out), "--quiet"]
    message = _one_line_failure(capsys, argv, out)
    assert "image file" in message and expected in message


def test_a_fifo_named_like_a_metadata_file_is_refused_not_read(capsys, tmp_path):
    dataset = tmp_path / "dataset"
    (dataset / "part").mkdir(parents=True)
    os.mkfifo(dataset / "part" / "metadata.jsonl")
    out = tmp_path / "probes"
    argv = ["probes", "build", "--dataset", str(dataset), "--image-column", "image"]
    argv += ["--question-column", "question", "--n", "1", "--out", str(out), "--quiet"]
    assert "metadata file 'metadata.jsonl' is a FIFO" in _one_line_failure(capsys, argv, out)
