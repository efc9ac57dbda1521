"""One forward pass (or prefill + one decode step) per batch, with the recorder attached.

The same prefill also yields the next-token logits at the last prompt position: on short-answer
items, the model's answer. So answers cost no extra forward.
"""

from __future__ import annotations

import torch

from headcast.errors import HeadcastError
from headcast.extract.inputs import EncodedBatch, position_ids
from headcast.extract.loading import Checkpoint
from headcast.extract.recording import Recorder, record
from headcast.schema import QueryPosition


def model_inputs(checkpoint: Checkpoint, batch: EncodedBatch) -> dict[str, torch.Tensor]:
    """The processor's tensors on the model's device, pixels in its dtype, positions padding-free."""
    inputs = {name: value.to(checkpoint.device) for name, value in batch.inputs.items()}
    inputs["pixel_values"] = inputs["pixel_values"].to(checkpoint.dtype)
    inputs["position_ids"] = position_ids(inputs["attention_mask"])
    return inputs


def check_left_padded(attention_mask: torch.Tensor) -> None:
    """The recorded query and the answer logits are at the last position: true only with left padding."""
    if not bool(attention_mask[:, -1].all()):
        raise HeadcastError(
            "the batch is right-padded, so the last position is not every probe's last token; "
            "set processor.tokenizer.padding_side = 'left'"
        )


@torch.inference_mode()
def record_batch(
    checkpoint: Checkpoint, batch: EncodedBatch, query: QueryPosition, keep_rows: bool = False
) -> Recorder:
    """Run the model on `batch` and return the recorder holding every layer's per-head metrics.

    `Recorder.next_token_logits` gets the [B, vocab] logits at the last prompt position (the first
    answer token's distribution); it stays None for `answer-mean`, whose input holds the answer.
    """
    model = checkpoint.model
    batch = batch.to(checkpoint.device)
    inputs = model_inputs(checkpoint, batch)
    check_left_padded(inputs["attention_mask"])
    recorder = Recorder(
        query_index=batch.query_index,
        query_weight=batch.query_weight,
        visual=batch.visual,
        region=batch.region,
        text=batch.text,
        keep_rows=keep_rows,
    )
    if query == "first-generated":
        # prefill without recording, then record the greedy first answer token's decode step
        prefill = model(**inputs, use_cache=True, logits_to_keep=1)
        recorder.next_token_logits = prefill.logits[:, -1].to(checkpoint.device)  # lm_head may sit elsewhere
        next_token = recorder.next_token_logits.argmax(-1, keepdim=True)
        attention_mask = torch.cat([inputs["attention_mask"], torch.ones_like(next_token)], dim=1)
        with record(model, recorder):
            model(
                input_ids=next_token,
                attention_mask=attention_mask,
                position_ids=inputs["position_ids"][:, -1:] + 1,
                past_key_values=prefill.past_key_values,
                use_cache=True,
                logits_to_keep=1,
            )
    else:
        with record(model, recorder):
            output = model(**inputs, use_cache=False, logits_to_keep=1)
        if query == "last-prompt":
            recorder.next_token_logits = output.logits[:, -1].to(checkpoint.device)
    return recorder
