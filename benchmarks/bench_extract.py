"""Recording overhead vs plain SDPA vs eager `output_attentions`, at the paper's image-token counts.

Two models of real token counts and tiny widths: LLaVA-1.5-shaped (336 px, 14 px patches: 576
image tokens) and LLaVA-1.6-AnyRes-shaped (a 672 px image in 2x2 tiles plus the base view and
one newline per row: ~2,900 image tokens). For each, the three modes run interleaved in one
process (median of repeats), and peak memory is measured per mode in a fresh process (the rise
of resident memory over the loaded model on CPU, `max_memory_allocated` on CUDA).

    python benchmarks/bench_extract.py [--json] [--repeats 5] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # before transformers loads, children included

import numpy as np
import torch
from PIL import Image

from headcast.experiments.modeling import (
    ModelSpec,
    build_model,
    build_processor,
    build_tokenizer,
    save_checkpoint,
)
from headcast.extract.inputs import encode_batch
from headcast.extract.loading import load_checkpoint
from headcast.extract.probes import Probe
from headcast.extract.runner import model_inputs, record_batch

MODELS = {
    "llava-1.5 (576 tokens)": (
        ModelSpec(
            "llava",
            "llama",
            layers=4,
            heads=8,
            kv_heads=8,
            head_dim=16,
            vision_layers=1,
            image_size=336,
            patch_size=14,
        ),
        (336, 336),
    ),
    "llava-1.6-anyres (~2,900 tokens)": (
        ModelSpec(
            "llava_next",
            "mistral",
            layers=4,
            heads=8,
            kv_heads=2,
            head_dim=16,
            vision_layers=1,
            image_size=336,
            patch_size=14,
            anyres_grid=2,
        ),
        (672, 672),
    ),
}
MODES = ("plain", "recording", "eager")


def make_checkpoint(spec: ModelSpec, image_size: tuple[int, int], root: Path) -> tuple[Path, Probe]:
    tokenizer = build_tokenizer(["how", "many", "circles", "are", "there"])
    folder = save_checkpoint(build_model(spec, tokenizer), build_processor(spec, tokenizer), root / "model")
    image = root / "image.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (*image_size[::-1], 3), dtype=np.uint8)).save(
        image
    )
    w, h = image_size
    return folder, Probe("bench", image, "how many circles are there ?", box=(0, 0, w // 2, h // 2))


def prepare(folder: Path, probe: Probe, mode: str, device: str):
    """A callable running one forward in `mode`, and the number of tokens it sees."""
    checkpoint = load_checkpoint(folder, device=device, dtype="float32")
    batch = encode_batch(checkpoint, [probe], "last-prompt")
    if mode == "eager":
        checkpoint.model.set_attn_implementation({"text_config": "eager"})
    inputs = model_inputs(checkpoint, batch)

    @torch.inference_mode()
    def run() -> None:
        if mode == "recording":
            record_batch(checkpoint, batch, "last-prompt")
        else:
            checkpoint.model(**inputs, use_cache=False, logits_to_keep=1, output_attentions=mode == "eager")
        if checkpoint.device.type == "cuda":
            torch.cuda.synchronize()

    return run, int(batch.visual.sum()), int(inputs["input_ids"].shape[1])


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def peak_memory_mb(folder: Path, probe: Probe, mode: str, device: str) -> float:
    """In this (fresh) process: the peak rise of memory during one forward of `mode`."""
    run, _, _ = prepare(folder, probe, mode, device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    base, peak, done = rss_bytes(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    run()
    done.set()
    sampler.join()
    return (max(peak[0], rss_bytes()) - base) / 2**20


def _child(queue, folder, probe, mode, device) -> None:
    queue.put(peak_memory_mb(folder, probe, mode, device))


def measure_in_fresh_process(folder: Path, probe: Probe, mode: str, device: str) -> float:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(queue, folder, probe, mode, device))
    process.start()
    result = queue.get(timeout=900)
    process.join()
    return result


def bench_model(spec: ModelSpec, image_size: tuple[int, int], repeats: int, device: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder, probe = make_checkpoint(spec, image_size, Path(tmp))
        runners = {mode: prepare(folder, probe, mode, device) for mode in MODES}
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        for mode in MODES:  # warm-up
            runners[mode][0]()
        for _ in range(repeats):
            for mode in MODES:  # interleaved, so drift hits every mode alike
                start = time.perf_counter()
                runners[mode][0]()
                times[mode].append(time.perf_counter() - start)
        del runners
        peaks = {mode: measure_in_fresh_process(folder, probe, mode, device) for mode in MODES}
        _, image_tokens, tokens = prepare(folder, probe, "plain", device)
    seconds = {mode: statistics.median(values) for mode, values in times.items()}
    return {
        "tokens": tokens,
        "image_tokens": image_tokens,
        "plain_s": round(seconds["plain"], 4),
        "recording_s": round(seconds["recording"], 4),
        "eager_s": round(seconds["eager"], 4),
        "recording_ratio": round(seconds["recording"] / seconds["plain"], 3),
        "eager_ratio": round(seconds["eager"] / seconds["plain"], 3),
        "plain_peak_mb": round(peaks["plain"], 1),
        "recording_peak_mb": round(peaks["recording"], 1),
        "eager_peak_mb": round(peaks["eager"], 1),
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    results = {
        name: bench_model(spec, size, args.repeats, args.device) for name, (spec, size) in MODELS.items()
    }
    report = {"device": args.device, "torch": torch.__version__, "models": results}
    if args.json:
        print(json.dumps(report))
        return
    for name, r in results.items():
        print(f"{name}: {r['tokens']} tokens ({r['image_tokens']} image)")
        print(
            f"  time plain {r['plain_s']:.3f}s  recording {r['recording_s']:.3f}s (x{r['recording_ratio']})"
            f"  eager {r['eager_s']:.3f}s (x{r['eager_ratio']})"
        )
        print(
            f"  peak MB plain {r['plain_peak_mb']}  recording {r['recording_peak_mb']}"
            f"  eager {r['eager_peak_mb']}"
        )


if __name__ == "__main__":
    main()
