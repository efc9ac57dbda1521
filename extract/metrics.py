"""Per-head scalars from post-softmax attention rows (definitions in docs/metrics.md)."""

from __future__ import annotations

import torch


def reduce_rows(
    rows: torch.Tensor, visual: torch.Tensor, region: torch.Tensor, text: torch.Tensor
) -> torch.Tensor:
    """Reduce attention rows [B, H, Q, K] to [B, H, Q, len(METRICS)].

    Key masks are [B, K]. Concentration is one minus the entropy of the attention renormalised
    inside the image, over the log of the number of image tokens: 1 on one patch, 0 uniform.
    """
    rows = rows.float()
    visual_f, region_f, text_f = (m[:, None, None, :].to(rows.dtype) for m in (visual, region, text))
    visual_mass = (rows * visual_f).sum(-1)
    inside = rows * visual_f / visual_mass.clamp_min(torch.finfo(rows.dtype).tiny)[..., None]
    entropy = -torch.special.xlogy(inside, inside).sum(-1)
    n_visual = visual.sum(-1).clamp_min(2).to(rows.dtype)[:, None, None]
    concentration = 1.0 - entropy / n_visual.log()
    return torch.stack(
        [visual_mass, (rows * text_f).sum(-1), (rows * region_f).sum(-1), concentration], dim=-1
    )
