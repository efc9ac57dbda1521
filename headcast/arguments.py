"""argparse types and the flags several commands share: a bad value is refused while parsing, saying what
is allowed.

argparse reports a refused value as `headcast CMD: error: argument --x: <message>` and exits 2.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from headcast.errors import HeadcastError
from headcast.scale import RayOptions
from headcast.schema import QUERY_POSITIONS


def _parsed(text: str, cast: type, what: str, hint: str = "") -> Any:
    """`cast(text)`, or the flag's one-line error: "'x' is not `what`; `hint`"."""
    try:
        return cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}" + (f"; {hint}" if hint else "")) from None


def positive_int(text: str) -> int:
    """A count of at least 1 (a batch size); 0 or less cannot split the work into batches."""
    value = _parsed(text, int, "a whole number", "give one of at least 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive; give a whole number of at least 1")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1] (a threshold on an attention share): NaN would silently make no head visual."""
    value = _parsed(text, float, "a number", "give one from 0 to 1")
    if not 0 <= value <= 1:  # also refuses NaN and inf
        raise argparse.ArgumentTypeError(
            f"{text} is not in [0, 1]; attention shares are fractions, give one from 0 to 1"
        )
    return value


def port_number(text: str) -> int:
    """A TCP port a server can listen on (1 to 65535)."""
    port = _parsed(text, int, "a port number")
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, got {port}")
    return port


# Flags that several commands take: each is defined, and its value checked, here and nowhere else.

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?|mps")
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
DTYPES = ("auto", "float32", "bfloat16", "float16")
# accelerate's placement strategies for a model bigger than one device (`--device-map`)
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def device_name(text: str) -> str:
    """A torch device name; whether this machine has it is checked when the command runs (torch is slow to
    import, and `--help` must not need it)."""
    if not DEVICE_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; give one of {DEVICE_CHOICES}")
    return text


def experiment_name(text: str) -> str:
    """An MLflow experiment name: MLflow refuses an empty one, and one with outer spaces is a look-alike."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not an experiment name; give a non-empty name")
    if text != text.strip():
        raise argparse.ArgumentTypeError(
            f"{text!r} starts or ends with whitespace; give the name without it ({text.strip()!r})"
        )
    return text


def experiment_name_or_none(text: str) -> str:
    """As `experiment_name`, but '' means "log to no experiment"."""
    return text if text == "" else experiment_name(text)


def seed_number(text: str) -> int:
    """A random seed: numpy's generators take 0 to 2**32 - 1 and raise on anything else."""
    value = _parsed(text, int, "a whole number", "give a seed from 0")
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{value} is not a seed; give a whole number from 0 to {2**32 - 1}")
    return value


def model_uri(text: str) -> str:
    """An MLflow model URI (models:/NAME@ALIAS, runs:/ID/model, a folder); empty would load nothing."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the model URI is empty; give e.g. models:/NAME@champion")
    return text


def add_device_flag(parser: argparse.ArgumentParser, help: str = "torch device") -> None:
    parser.add_argument(
        "--device", type=device_name, default="auto", metavar="DEVICE", help=f"{help}: {DEVICE_CHOICES}"
    )


def add_placement_flags(parser: argparse.ArgumentParser, help: str = "torch device") -> None:
    """`--device`, and `--device-map` for a model bigger than one device; read them with `placement`."""
    add_device_flag(parser, help)
    parser.add_argument(
        "--device-map",
        choices=DEVICE_MAPS,
        help="instead of --device: spread each checkpoint over this node's devices (accelerate's placement; "
        "under --ray, over the GPUs of its task), for a model bigger than one device",
    )


def placement(args: argparse.Namespace) -> tuple[str, str | None]:
    """The device and device map asked for: one of them, since a device map places the model itself."""
    if args.device_map and args.device != "auto":
        raise HeadcastError("pass --device or --device-map, not both: a device map places the model itself")
    return args.device, args.device_map


def add_dtype_flag(parser: argparse.ArgumentParser, help: str = "weights' dtype") -> None:
    parser.add_argument("--dtype", choices=DTYPES, default="auto", help=f"{help} (default auto)")


def add_batch_size_flag(parser: argparse.ArgumentParser, default: int, help: str) -> None:
    parser.add_argument("--batch-size", type=positive_int, default=default, metavar="N", help=help)


def add_query_flag(parser: argparse.ArgumentParser, default: str | None, help: str) -> None:
    parser.add_argument("--query", choices=QUERY_POSITIONS, default=default, help=help)


def add_experiment_flag(
    parser: argparse.ArgumentParser,
    default: str | None,
    help: str,
    *,
    required: bool = False,
    empty_means_none: bool = False,
) -> None:
    kind = experiment_name_or_none if empty_means_none else experiment_name
    parser.add_argument("--experiment", type=kind, default=default, required=required, help=help)


def add_seed_flag(parser: argparse.ArgumentParser, help: str = "random seed (default 0)") -> None:
    parser.add_argument("--seed", type=seed_number, default=0, help=help)


def add_jobs_flag(parser: argparse.ArgumentParser, default: int, help: str) -> None:
    parser.add_argument("--jobs", type=positive_int, default=default, metavar="N", help=help)


def add_model_flag(parser: argparse.ArgumentParser, default: str) -> None:
    help = f"MLflow model URI (default {default})"
    parser.add_argument("--model", type=model_uri, default=default, help=help)


def evaluation_budget(text: str) -> float:
    """Full evaluations per training run: a whole count ("2") or a share of its checkpoints ("0.4")."""
    value = _parsed(text, float, "a number", "give a count (2) or a share (0.4)")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a budget; give a count (2) or a share in (0, 1]")
    return int(value) if value.is_integer() else value


def non_negative(text: str) -> float:
    """A count of CPUs or GPUs a task holds: fractional shares are fine, a negative share is not."""
    value = _parsed(text, float, "a number", "give one of at least 0")
    if not 0 <= value < float("inf"):  # also refuses NaN
        raise argparse.ArgumentTypeError(f"{text} is not a number of at least 0")
    return value


def non_negative_int(text: str) -> int:
    """A count that may be 0 (retries)."""
    value = _parsed(text, int, "a whole number", "give one of at least 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give a whole number of at least 0")
    return value


def add_ray_flags(parser: argparse.ArgumentParser) -> None:
    """`--ray` and what each task on the cluster holds (docs/scale.md)."""
    group = parser.add_argument_group("Ray (headcast[ray])")
    group.add_argument(
        "--ray", action="store_true", help="one Ray task per checkpoint ($RAY_ADDRESS, else a local cluster)"
    )
    group.add_argument("--ray-address", metavar="HOST:PORT", help="the Ray cluster's head (implies --ray)")
    group.add_argument(
        "--gpus-per-task", type=non_negative, default=0.0, metavar="N", help="GPUs per task, may be 0.5 (0)"
    )
    group.add_argument(
        "--cpus-per-task", type=non_negative, default=1.0, metavar="N", help="CPUs per task (1)"
    )
    group.add_argument(
        "--max-retries", type=non_negative_int, default=3, metavar="N", help="reruns of a lost task (3)"
    )


def ray_options(args: argparse.Namespace) -> RayOptions | None:
    """The Ray run the flags of `add_ray_flags` ask for; None without `--ray` or `--ray-address`."""
    if not (args.ray or args.ray_address):
        return None
    return RayOptions(args.ray_address, args.gpus_per_task, args.cpus_per_task, args.max_retries)
