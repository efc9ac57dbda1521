"""`headcast serve`: its options, binding the port, and running the app under uvicorn.

The port is bound here, before the app starts, so a busy or forbidden port is one line
(`headcast: error: port 8765 on 127.0.0.1 is in use; ...`) rather than uvicorn's log of a startup
and shutdown; the bound socket is then handed to uvicorn, so nothing can take the port in between.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import socket
from pathlib import Path

from headcast.arguments import (
    add_device_flag,
    add_dtype_flag,
    add_experiment_flag,
    add_model_flag,
    add_ray_flags,
    evaluation_budget,
    port_number,
    positive_int,
    ray_options,
)
from headcast.errors import HeadcastError
from headcast.predictor.registry import DEFAULT_MODEL
from headcast.predictor.service.limits import Limits

log = logging.getLogger("headcast.serve")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_serve_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    serve = subparsers.add_parser(
        "serve",
        help="serve predictions over HTTP (JSON)",
        description="An HTTP JSON service: /health, /model, /predict (feature rows) and /jobs "
        "(checkpoint + probes, extracted in the background). OpenAPI docs at /docs.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=port_number, default=8765, help="TCP port, 1-65535 (default 8765)")
    add_model_flag(serve, DEFAULT_MODEL)
    serve.add_argument(
        "--root",
        action="append",
        type=Path,
        help="folder that job paths must lie in; repeatable (default: the current folder)",
    )
    add_device_flag(serve, "device for jobs")
    add_dtype_flag(serve, "dtype for jobs")
    add_experiment_flag(serve, "headcast-serve", "MLflow experiment of job runs")
    serve.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="keep every job in DIR/jobs.sqlite, so a restarted service reports (and resumes) them",
    )
    serve.add_argument(
        "--log-level", default="info", choices=("critical", "error", "warning", "info", "debug")
    )
    add_ray_flags(serve)  # each job's measuring a task on the cluster
    schedule = serve.add_argument_group("scheduled evaluation (POST /schedule)")
    schedule.add_argument(
        "--schedule-budget",
        type=evaluation_budget,
        metavar="B",
        help="full evaluations per training run that POST /schedule spends: a count, or a share in (0, 1] "
        "of the run's checkpoints; needs the two options below, the checkpoints to learn it from",
    )
    schedule.add_argument(
        "--schedule-features",
        type=Path,
        metavar="FILE",
        help="feature table of benchmarked training checkpoints (as 'headcast fit --features' reads)",
    )
    schedule.add_argument(
        "--schedule-scores", type=Path, metavar="FILE", help="their scores (as 'headcast fit --scores' reads)"
    )
    limits = serve.add_argument_group("limits")
    default = Limits()
    for flag, help_text in (
        ("--max-body-bytes", "largest request body; larger ones get 413"),
        ("--max-rows", "feature rows per POST /predict"),
        ("--max-pending", "jobs waiting in the queue; more get 429"),
        ("--keep-jobs", "finished jobs kept for GET /jobs/{id}"),
        ("--keep-runs", "training runs whose schedules POST /schedule keeps"),
        ("--batch-size", "probes per forward pass in a job"),
    ):
        value = getattr(default, flag[2:].replace("-", "_"))
        limits.add_argument(
            flag, type=positive_int, default=value, metavar="N", help=f"{help_text} ({value})"
        )
    serve.set_defaults(func=run_serve)
    return serve


def scheduler_from(args: argparse.Namespace):
    """The `EvaluationScheduler` the options ask for, fitted on their checkpoints, or None (POST /schedule
    then answers 409)."""
    given = (args.schedule_budget, args.schedule_features, args.schedule_scores)
    if all(option is None for option in given):
        return None
    if any(option is None for option in given):
        raise HeadcastError(
            "scheduling needs all three of --schedule-budget, --schedule-features and --schedule-scores "
            "(the budget, and the benchmarked checkpoints it is learnt from)"
        )
    # here, not at the top: loads scikit-learn, LightGBM only when this runs
    from headcast.predictor.dataset import build_dataset
    from headcast.predictor.schedule import fit_scheduler
    from headcast.predictor.scores import read_scores
    from headcast.tables import read_features

    features, settings = read_features(args.schedule_features)
    dataset = build_dataset(features, read_scores(args.schedule_scores), settings)
    log.info("fitting the evaluation scheduler on %d checkpoints", len(dataset.features))
    return fit_scheduler(dataset, args.schedule_budget)


def limits_from(args: argparse.Namespace) -> Limits:
    """The `Limits` the parsed options ask for (each option is named after its field)."""
    return Limits(**{field.name: getattr(args, field.name) for field in dataclasses.fields(Limits)})


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` (as uvicorn binds: SO_REUSEADDR), or a one-line HeadcastError."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as err:
        reason = getattr(err, "strerror", None) or err
        raise HeadcastError(
            f"cannot resolve --host {host!r} ({reason}); pass an address such as 127.0.0.1"
        ) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            message = f"port {port} on {host} is in use; pass --port with a free port, or stop what holds it"
        elif err.errno == errno.EACCES:
            message = f"no permission to bind port {port} on {host}; pass --port 1024 or above"
        elif err.errno == errno.EADDRNOTAVAIL:
            message = f"{host} is not an address of this machine; pass --host 127.0.0.1 or one of its own"
        else:
            message = f"cannot bind {host}:{port} ({err.strerror or err})"
        raise HeadcastError(message) from None
    sock.set_inheritable(True)
    return sock


def run_serve(args: argparse.Namespace) -> int:
    # here, not at the top: loads uvicorn only when this runs
    import uvicorn

    roots = args.root or [Path.cwd()]
    missing = [str(r) for r in roots if not Path(r).is_dir()]
    if missing:
        raise HeadcastError(f"--root {missing[0]} is not a folder")
    limits = limits_from(args)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(message)s")
    scheduler = scheduler_from(args)  # before binding: a bad table is one line, and no port is held meanwhile
    ray = ray_options(args)
    if ray is not None:  # here, not at the top: Ray only for a service that asks for it
        from headcast.scale import connect

        connect(ray)  # an unreachable cluster is one line now, not a failed job later
    sock = bind(args.host, args.port)
    try:
        if args.host not in LOOPBACK:
            log.warning(
                "binding %s: the service has no authentication; anyone who can reach it can use it", args.host
            )
        # here, not at the top: the app loads FastAPI, MLflow, scikit-learn; `headcast --help` needs none
        from headcast.predictor.service.app import create_app

        app = create_app(
            args.model,
            roots,
            args.device,
            args.dtype,
            args.experiment,
            limits,
            args.state_dir,
            scheduler=scheduler,
            ray=ray,
        )
        config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level)
        shown = f"[{args.host}]" if ":" in args.host else args.host
        log.info("serving http://%s:%d (press Ctrl+C to stop)", shown, args.port)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0
