"""`harness`: export (train, prune, bundle) and report (merge device results)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from harness.errors import EdgepruneError

# harness.device.DEVICE_CHOICES, written out so that `harness report` does not import torch (a test keeps them equal)
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


@click.group()
def cli() -> None:
    """edgeprune host side: prune on the workstation, measure on the device, compare in one report."""


@cli.command("export")
@click.option("--profile", default="full", show_default=True, envvar="PROFILE",
              help="full: the lab's settings; quick: a small subset and one epoch (about two minutes).")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(1), envvar="SEEDS",
              help="Repeat every experiment.")
@click.option("--tasks", default=None, help="Comma-separated tasks (default: every configured task).")
@click.option("--experiments", default=None, help="Comma-separated subset of the configured experiments.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Folder holding mnist/ (IDX) and sst2/ (TSV); default: $EDGEPRUNE_DATA, else a user cache.")
@click.option("--runs-dir", type=click.Path(path_type=Path), default=None, help="Run folders (default: runs/).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("build/bundle"), show_default=True)
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--model", "user_model", default=None, metavar="MODULE:FUNCTION",
              help="Your own model and data: pkg.module:build or path/file.py:build (see README).")
@click.option("--amount", type=float, default=None, help="With --model: fraction pruned per round (default: the plugin's, else 0.33).")
@click.option("--rounds", type=click.IntRange(0), default=None, help="With --model: pruning rounds.")
@click.option("--workers", type=click.IntRange(1), default=None, envvar="WORKERS",
              help="Run the experiment graph on a local Dask cluster of this many worker processes (loopback only).")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Run the experiment graph on this running Dask cluster; its workers must see --runs-dir.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="Torch threads per task (default: each worker's share of the cores; alone: torch's default).")
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True, envvar="DEVICE",
              help="Training, fine-tuning, calibration, sensitivity evaluation: auto picks cuda, then mps, then cpu.")
def export_cmd(profile, seeds, tasks, experiments, data_dir, runs_dir, out, quiet, user_model, amount,
               rounds, workers, scheduler, threads, device) -> None:
    """Train, prune and export every configured variant into a device bundle."""
    from exporters.bundle import build_bundle
    from harness.data import resolve_data_dir
    from harness.device import resolve_device
    from harness.experiments.store import runs_root
    from harness.graph import SequentialExecutor, TaskEnv, run_graph
    from harness.pipeline import DEFAULT_TASKS, ExportSettings, plans_named

    def split(value):
        return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None

    _check_bundle_out(out)
    runs_dir = runs_root(runs_dir)
    if runs_dir.exists() and not runs_dir.is_dir():
        raise EdgepruneError(f"the runs folder {runs_dir} (--runs-dir or EDGEPRUNE_RUNS) is a file; name a folder.")
    data_dir = resolve_data_dir(data_dir)
    if workers and scheduler:
        raise EdgepruneError("--workers starts a local cluster and --scheduler names a running one; give one.")
    if not (workers or scheduler):
        resolve_device(device)          # a named device this machine lacks stops the export before any work
    if user_model:
        from harness.plugins import user_plan
        plans = plans_named(split(tasks) or (), extra=(user_plan(user_model, amount,
                                                                 rounds, data_dir),))
    elif amount is not None or rounds is not None:
        raise EdgepruneError("--amount and --rounds apply only to a user model given with --model.")
    else:
        plans = plans_named(split(tasks) or DEFAULT_TASKS)
    settings = ExportSettings(profile=profile, seeds=seeds, plans=plans,
                              experiments=split(experiments), data_dir=data_dir,
                              runs_dir=runs_dir.absolute() if workers or scheduler else runs_dir, quiet=quiet)
    env = TaskEnv(device=device, threads=threads, quiet=quiet)
    if workers or scheduler:
        from harness.distributed import DaskExecutor
        executor = DaskExecutor(env, settings.runs_dir, workers=workers, scheduler=scheduler)
    else:
        executor = SequentialExecutor(env)
    try:   # training, pruning and ONNX export write run folders (and a first MNIST download the user cache)
        run = run_graph(settings, executor)
    except OSError as exc:
        raise EdgepruneError(f"could not write a file the export needs ({_reason(exc)}); finished runs are kept "
                             f"and resume on the next export.") from exc
    try:
        build_bundle(run.exports, out, profile, sensitivity=run.sensitivity, export_run=run.timing)
    except OSError as exc:
        raise EdgepruneError(f"could not write the bundle to {out} ({_reason(exc)}); finished runs are kept, "
                             f"so export again with another --out.") from exc
    click.echo(run.summary(), err=True)


def _reason(exc: OSError) -> str:
    return f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else str(exc)


def _files_not_in_bundle(out: Path) -> list[str]:
    """Files under an existing bundle folder that its manifest does not list (e.g. a result saved inside it)."""
    from runners.bundle import carried_wheel_paths
    from runners.package import RUNNER_FILES

    from runners.contract import ContractError, listed_paths, validate_manifest

    try:
        listed = listed_paths(validate_manifest(json.loads((out / "manifest.json").read_text()),
                                                require_models=False))
    except (OSError, ValueError) as exc:   # ContractError is a ValueError too
        problem = str(exc) if isinstance(exc, ContractError) else f"cannot be read ({exc})"
        raise EdgepruneError(f"--out {out} has a manifest.json that {problem}, so exporting could delete files it "
                             f"does not know; choose another --out or empty it.") from exc
    listed |= {"manifest.json", *RUNNER_FILES, *carried_wheel_paths(out)}
    present = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir())
    return [p for p in present if p not in listed]


def _check_bundle_out(out: Path) -> None:
    """Refuse an --out that the bundle would fail to replace, or whose files the swap would delete, before training."""
    if out.exists() and not out.is_dir():
        raise EdgepruneError(f"--out {out} is a file, not a folder for the bundle; choose another --out.")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise EdgepruneError(f"--out {out} already holds files that are not an edgeprune bundle, and exporting "
                             f"would replace them; choose another --out or empty it.")
    foreign = _files_not_in_bundle(out) if (out / "manifest.json").is_file() else []
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise EdgepruneError(f"--out {out} holds files the bundle did not put there ({shown}), and exporting "
                             f"would delete them; move them out of {out} or choose another --out.")
    parent = next((p for p in out.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise EdgepruneError(f"--out {out} lies under {parent}, which is a file; choose another --out.")


@cli.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--bundle", "bundle_dir", type=click.Path(path_type=Path), default=Path("build/bundle"),
              show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("build/report"), show_default=True)
def report_cmd(results, bundle_dir, out) -> None:
    """Merge device results with the bundle's host metrics into tables, plots and a report."""
    from harness.report import ReportError, build_report

    try:
        path = build_report(list(results), bundle_dir, out)
    except ReportError as exc:
        raise EdgepruneError(str(exc)) from exc
    except OSError as exc:  # e.g. --out under a file or in a read-only folder; the staged report is removed
        raise EdgepruneError(f"could not write the report to {out} ({_reason(exc)}).") from exc
    click.echo(f"report: {path}")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except EdgepruneError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("interrupted: finished runs are kept and resume on the next call.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted: finished runs are kept and resume on the next call.", err=True)
        sys.exit(130)
