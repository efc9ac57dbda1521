"""Turn a probe's question into the model's own prompt, through the processor's chat template."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importing transformers costs seconds; callers that only parse arguments skip it
    from transformers import ProcessorMixin


def build_prompt(processor: ProcessorMixin, question: str) -> str:
    """A single-turn user message holding the image and the question, with the generation prompt.

    Checkpoints without a chat template get the bare `<image>\\n{question}` form that LLaVA's
    pretraining stage used.
    """
    if getattr(processor, "chat_template", None):
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}
        ]
        return processor.apply_chat_template(messages, add_generation_prompt=True)
    return f"{processor.image_token}\n{question}"
