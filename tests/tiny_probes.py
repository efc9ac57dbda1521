"""A tiny probe set made on the fly for tests: no files ship with headcast."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 220)}
WORDS = [
    "how",
    "many",
    "are",
    "there",
    "circles",
    "squares",
    "is",
    "the",
    "in",
    "box",
    "what",
    "colour",
    "object",
    *COLOURS,
]


def write_tiny_probe_set(
    out_dir: str | Path, n: int = 6, seed: int = 0, size: tuple[int, int] = (40, 32)
) -> Path:
    """`n` images of coloured squares on noise, each with a question and the box of one square."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = size
    lines = []
    for i in range(n):
        image = Image.fromarray(rng.integers(0, 60, (height, width, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(image)
        colour = list(COLOURS)[i % len(COLOURS)]
        count = 1 + i % 3
        boxes = []
        for _ in range(count):
            x0, y0 = int(rng.integers(0, width - 10)), int(rng.integers(0, height - 10))
            boxes.append([x0, y0, x0 + 10, y0 + 10])
            draw.rectangle([x0, y0, x0 + 9, y0 + 9], fill=COLOURS[colour])
        image.save(out / "images" / f"{i}.png")
        item = {
            "id": f"tiny-{i}",
            "image": f"images/{i}.png",
            "question": f"how many {colour} squares are there ?",
            "answer": str(count),
            "box": boxes[0],
            "task": "count_object",
        }
        if i % 4 == 3:
            del item["box"]
        lines.append(json.dumps(item))
    probes = out / "probes.jsonl"
    probes.write_text("\n".join(lines) + "\n")
    return probes
