"""One forward pass (or prefill + one decode step) per batch, with the recorder attached."""

from __future__ import annotations

import torch

from extract.inputs import EncodedBatch, QueryPosition, position_ids
from extract.loading import Checkpoint
from extract.recording import Recorder, record


def model_inputs(checkpoint: Checkpoint, batch: EncodedBatch) -> dict[str, torch.Tensor]:
    """The processor's tensors on the model's device, pixels in its dtype, positions padding-free."""
    inputs = {name: value.to(checkpoint.device) for name, value in batch.inputs.items()}
    inputs["pixel_values"] = inputs["pixel_values"].to(checkpoint.dtype)
    inputs["position_ids"] = position_ids(inputs["attention_mask"])
    return inputs


@torch.inference_mode()
def record_batch(
    checkpoint: Checkpoint, batch: EncodedBatch, query: QueryPosition, keep_rows: bool = False
) -> Recorder:
    """Run the model on `batch` and return the recorder holding every layer's per-head metrics."""
    model = checkpoint.model
    batch = batch.to(checkpoint.device)
    inputs = model_inputs(checkpoint, batch)
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
        next_token = prefill.logits[:, -1].argmax(-1, keepdim=True)
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
            model(**inputs, use_cache=False, logits_to_keep=1)
    return recorder
