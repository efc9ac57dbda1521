"""Local lmms-eval task folders for tests, made as the lmms-eval fixture's recipe makes them.

Each task is a YAML with `dataset_path: json` over a benchmark JSONL and a `utils.py` beside it whose
`doc_to_visual`, `doc_to_text` and `process_results` are the task's own code (what lmms-eval calls).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

UTILS = """
from pathlib import Path

from PIL import Image

DATA = Path(__file__).parent / "data"


def doc_to_visual(doc):
    return [Image.open(DATA / doc["image"]).convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{doc['question']}{kwargs.get('post_prompt', '')}"


def process_results(doc, results):
    words = results[0].strip().lower().replace(".", " ").split()
    return {"exact_match": float(bool(words) and words[0] == str(doc["answer"]).lower())}
"""

TASK = """
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: answer
process_results: !function utils.process_results
generation_kwargs:
  max_new_tokens: {max_new_tokens}
  temperature: 0
  do_sample: false
  until: ["\\n\\n"]
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
lmms_eval_specific_kwargs:
  default:
    pre_prompt: ""
    post_prompt: "{post_prompt}"
metadata:
  - version: 0.0
"""


def write_task_folder(
    out: str | Path,
    benchmarks: dict[str, Path],
    post_prompt: str = "",
    max_new_tokens: int = 4,
) -> Path:
    """A task folder `out` with one task `zoo_<name>` per benchmark JSONL of `benchmarks`.

    The JSONL files are copied (images too) under `out/data`, so the folder stands on its own.
    """
    out = Path(out)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    (out / "utils.py").write_text(UTILS.lstrip(), encoding="utf-8")
    for name, source in benchmarks.items():
        lines = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line]
        for item in lines:
            image = source.parent / item["image"]
            target = data / name / Path(item["image"]).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(image.read_bytes())
            item["image"] = f"{name}/{target.name}"
        jsonl = data / f"{name}.jsonl"
        jsonl.write_text("".join(json.dumps(item) + "\n" for item in lines), encoding="utf-8")
        yaml = TASK.format(
            name=f"zoo_{name}", data=jsonl.resolve(), max_new_tokens=max_new_tokens, post_prompt=post_prompt
        )
        (out / f"zoo_{name}.yaml").write_text(textwrap.dedent(yaml).lstrip(), encoding="utf-8")
    return out
