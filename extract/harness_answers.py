"""Answer lmms-eval task items the way lmms-eval's chat `llava_hf` model does, then score them by the task.

What is hand-written here mirrors `lmms_eval.models.chat.llava_hf.LlavaHf.generate_until` (0.7.3): the
task's messages through `ChatMessages`, the processor's own chat template with the generation prompt,
one item at a time, greedy decoding with the task's `max_new_tokens` (1024 when unset) and `num_beams`,
the tokenizer's EOS as pad and stop token, the continuation decoded without special tokens (that model
does not cut at `until`). The task's filters and `process_results` then give the value lmms-eval logs.
The same forward pass gives the gold answer's probability and the model's confidence at the first
generated token, where the target is one token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from headcast.errors import HeadcastError
from headcast.extract.answers import AnswerStats, first_token_answers
from headcast.extract.harness_tasks import HarnessTask, TaskItem

DEFAULT_MAX_NEW_TOKENS = 1024  # llava_hf's when the task sets none


def chat_inputs(processor: Any, item: TaskItem) -> tuple[str, list]:
    """The prompt text and images of `item`, as llava_hf renders them (the processor's chat template)."""
    from lmms_eval.protocol import ChatMessages  # lmms-eval: only where items are answered

    chat = ChatMessages(messages=item.messages)
    images, _videos, _audios = chat.extract_media()
    prompt = processor.apply_chat_template(
        chat.model_dump()["messages"], tokenize=False, add_generation_prompt=True
    )
    return prompt, images


def generate_answer(
    model: Any, processor: Any, item: TaskItem, generation_kwargs: dict
) -> tuple[str, AnswerStats]:
    """The greedy continuation of `item` and first-token statistics (`prob`, `confidence`)."""
    # here, not at the top: loads torch only when this runs
    import torch

    prompt, images = chat_inputs(processor, item)
    inputs = processor(images=images or None, text=prompt, return_tensors="pt").to(model.device, model.dtype)
    eos = processor.tokenizer.eos_token_id
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            do_sample=False,
            num_beams=generation_kwargs.get("num_beams", 1),
            max_new_tokens=generation_kwargs.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS),
            pad_token_id=eos,
            eos_token_id=eos,
            output_logits=True,
            return_dict_in_generate=True,
        )
    continuation = out.sequences[0, inputs["input_ids"].shape[1] :]
    text = processor.tokenizer.decode(continuation, skip_special_tokens=True)
    stats = first_token_answers(out.logits[0], processor.tokenizer, [prompt], [item.target])[0]
    return text, stats


def answer_task_items(
    model: Any,
    processor: Any,
    task: HarnessTask,
    doc_ids: Sequence[str] | None = None,
    on_item: Callable[[], None] | None = None,
) -> list[dict]:
    """Per item: `benchmark` (the task), `item` (doc_id), `correct` (the task's metric value), `answer`
    (the filtered response lmms-eval logs), `prob` and `confidence`."""
    if task.generation_kwargs.get("do_sample") or float(task.generation_kwargs.get("temperature") or 0) > 0:
        raise HeadcastError(
            f"lmms-eval task {task.name!r} samples (temperature > 0); its per-item values are not "
            "reproducible, so headcast answers greedy tasks only"
        )
    rows = []
    for item in task.items(doc_ids):
        text, stats = generate_answer(model, processor, item, task.generation_kwargs)
        value, filtered = task.score(item.doc_id, text)
        rows.append(
            {
                "benchmark": task.name,
                "item": item.doc_id,
                "correct": value,
                "answer": filtered,
                "prob": stats.get("prob", float("nan")),
                "confidence": stats["confidence"],
            }
        )
        if on_item is not None:
            on_item()
    return rows
