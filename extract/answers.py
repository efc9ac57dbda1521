"""Short answers: the scoring rule, and what the first answer token's distribution says.

On short-answer items (yes/no, a number, a colour, a direction) the answer is the first generated
token, predicted at the last prompt position: the very position where heads are recorded. So one
prefill gives, besides the head metrics, the model's answer, whether it is right, the gold answer's
probability and the model's confidence (its top token's probability). The evaluator (ground
truth, greedy generation) and extraction (one prefill) share these definitions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

NUMBER_WORDS = {
    word: str(i)
    for i, word in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven")
    )
}


class AnswerStats(TypedDict, total=False):
    """One item's first-token answer; `correct` and `prob` only where the item has a gold answer."""

    answer: str
    confidence: float
    correct: bool
    prob: float


def first_word(text: str) -> str:
    """The first word of `text`, lower-cased, without punctuation ('Yes.' -> 'yes')."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return words[0] if words else ""


def first_number(text: str) -> str:
    """The first number in `text`, written in digits ('There are two.' -> '2'); '' if none."""
    for word in re.findall(r"[a-z]+|\d+", text.lower()):
        if word.isdigit():
            return str(int(word))
        if word in NUMBER_WORDS:
            return NUMBER_WORDS[word]
    return ""


def is_correct(generated: str, answer: str) -> bool:
    """Exact match: numbers against the first number generated, anything else against the first word."""
    gold = answer.strip().lower()
    if gold.isdigit():
        return first_number(generated) == str(int(gold))
    return first_word(generated) == first_word(gold)


def gold_token_ids(tokenizer: PreTrainedTokenizerBase, prompt: str, answer: str) -> list[int]:
    """Token ids that, as the first answer token, spell the whole gold answer by themselves.

    Tokenizers differ in whether the answer after a prompt carries a leading space, and exact match
    ignores case, so every single-token spelling of `answer`, `answer` lower-cased and capitalised,
    each with and without a leading space, counts; the unknown token never does. Empty when the
    answer needs more than one token: its probability is then undefined.
    """
    return batch_gold_token_ids(tokenizer, [prompt], [answer])[0]


def batch_gold_token_ids(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], answers: Sequence[str]
) -> list[list[int]]:
    """`gold_token_ids` of many items in one tokenizer call (a call per text costs more than the model)."""
    texts: list[str] = []
    spans: list[tuple[int, int]] = []
    for prompt, answer in zip(prompts, answers, strict=True):
        spellings = sorted({answer, answer.lower(), answer.capitalize()})
        variants = [prompt, *(prompt + text for s in spellings for text in (s, " " + s))]
        spans.append((len(texts), len(texts) + len(variants)))
        texts += variants
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    out = []
    for start, end in spans:
        prompt_ids, ids = encoded[start], set()
        for full in encoded[start + 1 : end]:
            if full[: len(prompt_ids)] == prompt_ids and len(full) == len(prompt_ids) + 1:
                ids.add(full[-1])
        out.append(sorted(ids - {tokenizer.unk_token_id}))
    return out


def first_token_answers(
    logits: torch.Tensor,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    answers: Sequence[str | None],
) -> list[AnswerStats]:
    """Per row of next-token `logits` [batch, vocab]: the greedy answer token and how sure it was.

    Keys: `answer` (the top token, decoded), `confidence` (its probability), and, where the item has
    a gold answer, `correct` (the top token alone matches it) and `prob` (the gold answer's
    probability; NaN when it is not one token).
    """
    probs = logits.float().softmax(-1)
    top = probs.max(-1)
    labelled = {i: gold for i, gold in enumerate(answers) if gold is not None}
    gold_ids = dict(
        zip(
            labelled,
            batch_gold_token_ids(tokenizer, [prompts[i] for i in labelled], list(labelled.values())),
            strict=True,
        )
    )
    rows: list[AnswerStats] = []
    for i, gold in enumerate(answers):
        given: str = tokenizer.decode([int(top.indices[i])], skip_special_tokens=True)
        row: AnswerStats = {"answer": given, "confidence": float(top.values[i])}
        if gold is not None:
            ids = gold_ids[i]
            row["correct"] = is_correct(given, gold)
            row["prob"] = float(probs[i, ids].sum()) if ids else float("nan")
        rows.append(row)
    return rows
