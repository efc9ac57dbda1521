"""What `HeadcastCallback` costs a training run, measured side by side in one process.

    python benchmarks/bench_callback.py [--json] [--steps 200] [--every 50] [--probes 16]

The model is the small zoo's first run (`--preset`) trained by a transformers `Trainer` on
the zoo's instruction data (batch 16, CPU). Run A trains without the callback, run B with it at the
documented settings (every 50 steps, 16 probes); both start from the same weights, and A runs again
after B to expose drift of a shared machine. Reported: training time of each, the overhead share
(B / mean(A) - 1), and the callback's own measured seconds as a share of B's training time.
The predictor is fitted in memory on synthetic rows; the metrics go to a throwaway MLflow store.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--probes", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--preset", default="small", help="zoo preset whose first run shape is trained")
    args = parser.parse_args()

    import mlflow
    from transformers import Trainer, TrainingArguments

    from benchmarks.bench_service import synthetic_rows
    from headcast.experiments import train
    from headcast.experiments.modeling import build_model, build_processor
    from headcast.experiments.scenes import make_mixture
    from headcast.experiments.suite import write_probes
    from headcast.experiments.zoo import load_config
    from headcast.predictor.callback import HeadcastCallback
    from headcast.predictor.dataset import build_dataset
    from headcast.predictor.models import HeadcastPredictor

    config = load_config(args.preset)
    spec, res = config.runs[0].spec, config.resolution
    processor = build_processor(spec, train.zoo_tokenizer())
    start = build_model(spec, processor.tokenizer, seed=0)
    items = make_mixture(0, 256, config.grid)
    data = train.encode(processor, items, [item.scene.render(res) for item in items], "qa")
    examples = [{k: v[i] for k, v in data.items()} for i in range(len(items))]
    dataset = build_dataset(*synthetic_rows())
    predictor = HeadcastPredictor("ridge").fit(dataset.features, dataset.scores, dataset.groups)

    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        mlflow.set_experiment("bench-callback")
        probes = write_probes(Path(tmp) / "probes", 0, args.probes, res, config.grid)

        def run(callback: HeadcastCallback | None, steps: int = args.steps) -> float:
            training = TrainingArguments(
                output_dir=f"{tmp}/out",
                max_steps=steps,
                per_device_train_batch_size=args.batch_size,
                learning_rate=1e-3,
                use_cpu=True,
                save_strategy="no",
                report_to=[],
                disable_tqdm=True,
                seed=0,
            )
            model = copy.deepcopy(start).train()
            trainer = Trainer(
                model=model, args=training, train_dataset=examples, callbacks=[callback] if callback else []
            )
            started = time.perf_counter()
            trainer.train()
            return time.perf_counter() - started

        run(None, steps=10)  # warm-up: first-call costs (allocator, kernels) belong to neither side
        plain_before = run(None)
        callback = HeadcastCallback(processor, probes, predictor, every_n_steps=args.every)
        with_callback = run(callback)
        plain_after = run(None)

    plain = (plain_before + plain_after) / 2
    measured = sum(m["headcast/seconds"] for _, m in callback.history)
    report = {
        "model": config.runs[0].name,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "every_n_steps": args.every,
        "probes": args.probes,
        "evaluations": len(callback.history),
        "train_seconds_without": [round(plain_before, 2), round(plain_after, 2)],
        "train_seconds_with": round(with_callback, 2),
        "overhead_share": round(with_callback / plain - 1, 4),
        "callback_seconds": round(measured, 2),
        "callback_share_of_training": round(measured / with_callback, 4),
        "seconds_per_evaluation": round(measured / max(1, len(callback.history)), 3),
    }
    if args.json:
        print(json.dumps(report))
    else:
        evaluations = f"{report['evaluations']} evaluations, {report['seconds_per_evaluation']:.2f} s each"
        print(
            f"{report['model']}, {args.steps} steps of batch {args.batch_size}; "
            f"callback every {args.every} steps on {args.probes} probes ({evaluations})\n"
            f"  training without: {plain_before:.1f} s / {plain_after:.1f} s, with: {with_callback:.1f} s "
            f"-> overhead {100 * report['overhead_share']:.1f} %\n"
            f"  callback's own time: {measured:.2f} s "
            f"= {100 * report['callback_share_of_training']:.1f} % of training time"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
