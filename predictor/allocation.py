"""Budget allocation across benchmarks: a total of answered items spent where intervals shrink most.

Answering k items of every benchmark spends as much on a benchmark the label-free estimate already
pins down as on one it barely knows. Given each benchmark's expected interval half-width at every
budget (learnt inside the training folds), `allocate_items` buys, one move at a time, the items
that narrow an interval most per item, the widest interval first where moves tie.
"""

from __future__ import annotations

import pandas as pd


def allocate_items(widths: pd.DataFrame, total: int) -> pd.Series:
    """Answered items per benchmark, levels of `widths`' columns, spending at most `total` in all.

    `widths`: index benchmarks, columns budgets k (every benchmark starts at the smallest), values
    the interval half-width expected at that k. Greedy: each step moves one benchmark to a higher k,
    the move that narrows its interval most per item among those that still fit, until no move that
    fits narrows any interval.
    """
    levels = sorted(widths.columns)
    current = pd.Series(levels[0], index=widths.index, dtype=int)
    left = total - levels[0] * len(widths)
    if left < 0:
        raise ValueError(f"a total of {total} items cannot give every benchmark its first {levels[0]}")
    while True:
        moves = [
            ((widths.at[b, now] - widths.at[b, k]) / (k - now), widths.at[b, now], b, k)
            for b, now in current.items()
            for k in levels
            if now < k <= now + left
        ]
        gain, _, benchmark, k = max(moves, default=(0.0, 0.0, None, 0), key=lambda move: move[:2])
        if benchmark is None or not gain > 0:
            return current
        left -= k - current[benchmark]
        current[benchmark] = k
