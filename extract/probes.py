"""Probe and benchmark items: JSONL, one item a line, images relative to the file."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from extract.errors import HeadcastError


@dataclasses.dataclass(frozen=True)
class Probe:
    id: str
    image: Path
    question: str
    answer: str | None = None
    box: tuple[float, float, float, float] | None = None
    task: str | None = None

    def load_image(self) -> Image.Image:
        try:
            with Image.open(self.image) as image:
                return image.convert("RGB")
        except (OSError, UnidentifiedImageError) as err:
            raise HeadcastError(f"probe {self.id!r}: cannot read image {self.image}: {err}") from None


def _parse_line(line: str, where: str, root: Path) -> Probe:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as err:
        raise HeadcastError(f"{where}: not valid JSON ({err.msg}); write one JSON object per line") from None
    if not isinstance(item, dict):
        raise HeadcastError(f"{where}: expected a JSON object with id, image and question")
    missing = [key for key in ("id", "image", "question") if key not in item]
    if missing:
        raise HeadcastError(f"{where}: missing field(s) {', '.join(missing)}")
    box = item.get("box")
    if box is not None:
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int | float) for v in box)):
            raise HeadcastError(f"{where}: box must be [x0, y0, x1, y1] in pixels, got {box!r}")
        box = tuple(float(v) for v in box)
    answer = item.get("answer")
    return Probe(
        id=str(item["id"]),
        image=(root / str(item["image"])).resolve(),
        question=str(item["question"]),
        answer=None if answer is None else str(answer),
        box=box,
        task=item.get("task"),
    )


def _check_image(probe: Probe, where: str) -> None:
    if not probe.image.is_file():
        raise HeadcastError(
            f"{where}: image {probe.image} does not exist; paths are relative to the JSONL file"
        )
    try:
        with Image.open(probe.image) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError):
        raise HeadcastError(f"{where}: image {probe.image} is not a readable image file") from None
    if probe.box is not None:
        x0, y0, x1, y1 = probe.box
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise HeadcastError(
                f"{where}: box {list(probe.box)} is not inside the {width}x{height} image "
                "(need 0 <= x0 < x1 <= width, 0 <= y0 < y1 <= height)"
            )


def read_probes(path: str | Path) -> list[Probe]:
    """Read and validate a probe/benchmark JSONL file; every problem names its line."""
    path = Path(path)
    if not path.is_file():
        raise HeadcastError(f"probe file {path} does not exist")
    probes = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            probe = _parse_line(line, where, path.parent)
            _check_image(probe, where)
            probes.append(probe)
    if not probes:
        raise HeadcastError(f"probe file {path} has no items; add at least one JSON line")
    ids = [p.id for p in probes]
    if len(set(ids)) != len(ids):
        raise HeadcastError(f"probe file {path} repeats ids; every item needs a unique id")
    return probes


def probe_set_hash(probes: list[Probe]) -> str:
    """Content hash of the items and the bytes of their images (not their paths)."""
    digest = hashlib.sha256()
    for probe in probes:
        fields = dataclasses.asdict(probe) | {"image": hashlib.sha256(probe.image.read_bytes()).hexdigest()}
        digest.update(json.dumps(fields, sort_keys=True).encode())
    return digest.hexdigest()[:16]
