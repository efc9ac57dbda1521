"""Probe and benchmark items: JSONL, one item a line, images relative to the file."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from PIL import Image, UnidentifiedImageError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails

from headcast.errors import HeadcastError
from headcast.paths import resolve_input_file


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


FiniteNumber = Annotated[StrictInt | StrictFloat, AfterValidator(_finite)]


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
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as err:
            raise HeadcastError(f"probe {self.id!r}: cannot read image {self.image}: {err}") from None


# A model's image placeholder inside a question would add a second image slot the inputs cannot fill.
IMAGE_PLACEHOLDERS = ("<image>", "<|image_pad|>", "<|image|>", "<img>")


class ProbeLine(BaseModel):
    """One JSONL line as written; strict, so `question: 42` or `id: null` is refused, not stringified."""

    model_config = ConfigDict(extra="allow", strict=True)

    id: StrictStr | StrictInt
    image: Annotated[StrictStr, Field(min_length=1)]
    question: Annotated[StrictStr, Field(min_length=1)]
    answer: StrictStr | StrictInt | None = None
    box: Annotated[list[FiniteNumber], Field(min_length=4, max_length=4)] | None = None
    task: StrictStr | None = None

    @field_validator("question")
    @classmethod
    def _no_image_placeholder(cls, question: str) -> str:
        for placeholder in IMAGE_PLACEHOLDERS:
            if placeholder in question:
                raise ValueError(
                    f"contains the image placeholder {placeholder!r}; headcast adds the image itself"
                )
        return question

    @field_validator("answer")
    @classmethod
    def _no_blank_answer(cls, answer: str | int | None, info: ValidationInfo) -> str | int | None:
        """A blank gold answer would match any answer without a word, and has no tokens to average over."""
        if isinstance(answer, str) and not answer.strip():
            raise ValueError(
                f"probe {info.data.get('id')!r} has an empty answer; give its answer or leave the field out"
            )
        return answer


def _parse_line(line: str, where: str, root: Path) -> Probe:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as err:
        raise HeadcastError(f"{where}: not valid JSON ({err.msg}); write one JSON object per line") from None
    except RecursionError:
        raise HeadcastError(f"{where}: JSON nested too deeply; write one flat JSON object per line") from None
    if not isinstance(item, dict):
        raise HeadcastError(f"{where}: expected a JSON object with id, image and question")
    try:
        fields = ProbeLine.model_validate(item)
    except ValidationError as err:
        problem = err.errors()[0]
        field = ".".join(str(part) for part in problem["loc"][:1]) or "line"
        value = item.get(field, "missing")
        shown = "missing" if problem["type"] == "missing" else f"{json.dumps(value)[:60]}"
        raise HeadcastError(f"{where}: field {field!r} is {shown} ({_reason(problem)})") from None
    image = resolve_input_file(root, fields.image, f"{where}: image", "the JSONL file")
    return Probe(
        id=str(fields.id),
        image=image,
        question=fields.question,
        answer=None if fields.answer is None else str(fields.answer),
        box=None if fields.box is None else _box(fields.box),
        task=fields.task,
    )


def _box(corners: Sequence[float]) -> tuple[float, float, float, float]:
    """The four corners `ProbeLine` checked, as the fixed-size tuple a `Probe` holds."""
    x0, y0, x1, y1 = (float(v) for v in corners)
    return x0, y0, x1, y1


def _reason(problem: ErrorDetails) -> str:
    """pydantic's message for one field, in the words of the probe format."""
    field = str(problem["loc"][0]) if problem["loc"] else ""
    if field == "box":
        return "box must be [x0, y0, x1, y1]: four finite numbers, in pixels"
    if problem["type"] == "missing":
        return "every line needs id, image and question"
    if problem["type"] == "value_error":
        return str(problem["ctx"]["error"])
    return {
        "id": "id must be a string or an integer",
        "answer": "answer must be a string or an integer",
    }.get(field, f"{field} must be a non-empty string" if field in ("image", "question") else problem["msg"])


def _check_image(probe: Probe, where: str) -> None:
    try:
        with Image.open(probe.image) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError):
        raise HeadcastError(f"{where}: image {probe.image} is not a readable image file") from None
    except Image.DecompressionBombError:
        limit = 2 * Image.MAX_IMAGE_PIXELS  # type: ignore[operator]  # PIL raises this only while a limit is set
        raise HeadcastError(
            f"{where}: image {probe.image} has more than {limit} pixels; "
            "a probe image this large is refused as a decompression bomb, resize it"
        ) from None
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
    if not os.path.isfile(path):  # not Path.is_file: Python 3.11's raises on a name too long to exist
        raise HeadcastError(f"probe file {path} does not exist")
    probes = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise HeadcastError(
            f"{path} is not UTF-8 text (byte {err.start}); save the probe file as UTF-8"
        ) from None
    except OSError as err:
        raise HeadcastError(f"cannot read probe file {path} ({err.strerror})") from None
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
