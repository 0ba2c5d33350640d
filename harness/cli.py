"""`harness`: export (train, prune, bundle) and report (merge device results)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

import harness
from harness.errors import EdgepruneError
from harness.seeds import DEFAULT_SEED_STREAMS, SEED_STREAM_MODES
from runners.safety import os_error_reason, output_problem, terminal_safe

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# harness.device.DEVICE_CHOICES, written out so that `harness report` does not import torch (a test keeps them equal)
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


@click.group(context_settings=CONTEXT)
@click.version_option(harness.__version__, "-V", "--version", prog_name="harness")
def cli() -> None:
    """edgeprune host side: prune on the workstation, measure on the device, compare in one report.

    \b
    harness export   train, prune and export the configured variants into a device bundle
    harness bench    copy the bundle to devices over SSH, bench it there, fetch the results
    harness report   merge device results (from `runner bench`) with the bundle into a report
    """


def _split(value: str | None) -> tuple[str, ...] | None:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


@cli.command("export")
@click.option("--profile", default="full", show_default=True, envvar="PROFILE",
              help="full: the lab's settings; quick: a small subset and one epoch (a smoke test, about two minutes).")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(1), envvar="SEEDS",
              help="Repeat every experiment with seeds 0..N-1; the report shows mean ± std over them.")
@click.option("--tasks", default=None, metavar="LIST",
              help="Comma-separated plans to run (mnist, sst2, sst2-transformer); default: all of them.")
@click.option("--experiments", default=None, metavar="LIST",
              help="Comma-separated subset of the planned experiments (baseline, repeated, imp, structured, "
                   "sensitivity).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Folder holding mnist/ (IDX) and sst2/ (TSV); default: $EDGEPRUNE_DATA, else a user cache.")
@click.option("--runs-dir", type=click.Path(path_type=Path), default=None,
              help="Run folders, reused when the settings are unchanged (default: $EDGEPRUNE_RUNS, else runs/).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("build/bundle"), show_default=True,
              help="Bundle folder to write (replaced as a whole when the export succeeds).")
@click.option("--preset", type=click.Choice(["complete", "deployable"]), default="complete", show_default=True,
              help="complete: every variant and file. deployable: per model the dense baseline, the structured "
                   "variant with the fewest parameters within 1 point of dense, and the smallest int8 file within "
                   "1 point (megabytes instead of hundreds).")
@click.option("--formats", default=None, metavar="LIST",
              help="Comma-separated file formats to ship (onnx, onnx-sparse, onnx-int8-dynamic, onnx-int8-static); "
                   "default: all.")
@click.option("--variants", "variants_glob", default=None, metavar="GLOB",
              help="Only variants whose name matches this glob, e.g. 'mnist-ffn-structured-*'.")
@click.option("--quiet", is_flag=True, help="No progress output (errors are still printed).")
@click.option("--model", "user_model", default=None, metavar="MODULE:FUNCTION",
              help="Your own model and data: pkg.module:build or path/file.py:build (see README).")
@click.option("--amount", type=float, default=None,
              help="With --model: fraction pruned per round (default: the plugin's, else 0.33).")
@click.option("--rounds", type=click.IntRange(0), default=None,
              help="With --model: pruning rounds (default: the profile's, 5).")
@click.option("--seed-streams", type=click.Choice(SEED_STREAM_MODES), default=DEFAULT_SEED_STREAMS, show_default=True,
              help="split: init, data order, dropout and calibration each draw from their own seed derived from the "
                   "run seed; shared: all from the run seed itself, as runs made before this option were seeded.")
@click.option("--workers", type=click.IntRange(1), default=None, envvar="WORKERS",
              help="Run the experiment graph on a local Dask cluster of this many worker processes (loopback only).")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Run the experiment graph on this running Dask cluster; its workers must see --runs-dir.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="Torch threads per task (default: each worker's share of the cores; alone: torch's default).")
@click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True, envvar="DEVICE",
              help="Training, fine-tuning, calibration, sensitivity evaluation: auto picks cuda, then mps, then cpu.")
def export_cmd(profile, seeds, tasks, experiments, data_dir, runs_dir, out, preset, formats, variants_glob, quiet,
               user_model, amount, rounds, seed_streams, workers, scheduler, threads, device) -> None:
    """Train, prune and export every configured variant into a device bundle.

    Finished runs are reused, so a second export with the same settings trains nothing; progress shows a bar with
    the time left on a terminal and one line per finished step in a log. The export is a graph of tasks (one
    process, or a Dask cluster with --workers/--scheduler); it ends with the work, wall and critical-path times.
    """
    from exporters.bundle import build_bundle
    from exporters.selection import Selection, apply
    from harness.data import resolve_data_dir
    from harness.device import resolve_device
    from harness.experiments.store import runs_root
    from harness.graph import SequentialExecutor, TaskEnv, run_graph
    from harness.pipeline import DEFAULT_TASKS, ExportSettings, plans_named

    selection = Selection(preset=preset, formats=_split(formats), variants=variants_glob)
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
        plans = plans_named(_split(tasks) or (), extra=(user_plan(user_model, amount, rounds, data_dir),))
    elif amount is not None or rounds is not None:
        raise EdgepruneError("--amount and --rounds apply only to a user model given with --model.")
    else:
        plans = plans_named(_split(tasks) or DEFAULT_TASKS)
    settings = ExportSettings(profile=profile, seeds=seeds, plans=plans,
                              experiments=_split(experiments), data_dir=data_dir,
                              runs_dir=runs_dir.absolute() if workers or scheduler else runs_dir, quiet=quiet,
                              seed_streams=seed_streams)
    _check_writes(out, reads=[runs_dir, data_dir])
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
    # the graph exports every variant (a finished export is read back); the selection keeps what ships
    chosen = apply(selection, run.exports)
    record = None if selection.complete else selection.record(len(chosen), len(run.exports))
    try:
        build_bundle(chosen, out, profile, sensitivity=run.sensitivity, selection=record, export_run=run.timing,
                     quiet=quiet)
    except OSError as exc:
        raise EdgepruneError(f"could not write the bundle to {out} ({_reason(exc)}); finished runs are kept, "
                             f"so export again with another --out.") from exc
    click.echo(run.summary(), err=True)


def _reason(exc: OSError) -> str:
    return os_error_reason(exc)


def _check_writes(out: Path, reads) -> None:
    """runners.safety.output_problem, the check every writing command shares: --out is a folder here (bundle,
    report) and must not hold what the command reads, which the swap would delete."""
    problem = output_problem(out, folder=True, reads=[p for p in reads if p is not None])
    if problem:
        raise EdgepruneError(f"--out {out} {problem}.")


def _files_not_in_bundle(out: Path) -> list[str]:
    """Files under an existing bundle folder that its manifest does not list (e.g. a result saved inside it)."""
    from runners.bundle import carried_wheel_paths
    from runners.package import RUNNER_FILES

    from runners.contract import ContractError, listed_paths, validate_manifest
    from runners.files import read_json

    try:
        listed = listed_paths(validate_manifest(read_json(out / "manifest.json"), require_models=False))
    except (OSError, ValueError) as exc:   # ContractError is a ValueError too
        problem = str(exc) if isinstance(exc, ContractError) else f"cannot be read ({exc})"
        raise EdgepruneError(f"--out {out} has a manifest.json that {problem}, so exporting could delete files it "
                             f"does not know; choose another --out or empty it.") from exc
    listed |= {"manifest.json", *RUNNER_FILES, *carried_wheel_paths(out)}
    present = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir())
    return [p for p in present if p not in listed]


def _check_bundle_out(out: Path) -> None:
    """Refuse an --out that the bundle would fail to replace, or whose files the swap would delete, before training."""
    _check_writes(out, reads=())
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
              show_default=True, help="The bundle the results measured (its manifest holds the host numbers).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("build/report"), show_default=True,
              help="Report folder to write (replaced as a whole): report.md, report.html, CSV, PNG, report.pdf.")
@click.option("--pdf", type=click.Choice(["auto", "yes", "no"]), default="auto", show_default=True,
              help="report.pdf through headless Chromium: auto writes it when a browser is found and says how to "
                   "get one when not; yes fails without one; no skips it.")
def report_cmd(results, bundle_dir, out, pdf) -> None:
    """Merge device results with the bundle's host metrics into tables, plots and a report.

    RESULTS are one or more result JSON files written by `runner bench` on the devices, for the same bundle.
    """
    from harness.report import ReportError, build_report
    from harness.report.browser import BrowserMissing, write_pdf

    _check_writes(out, reads=[*results, bundle_dir])
    try:
        path = build_report(list(results), bundle_dir, out)
    except ReportError as exc:
        raise EdgepruneError(str(exc)) from exc
    except OSError as exc:  # e.g. --out under a file or in a read-only folder; the staged report is removed
        raise EdgepruneError(f"could not write the report to {out} ({_reason(exc)}).") from exc
    click.echo(f"report: {path}")
    if pdf == "no":
        return
    try:
        check = write_pdf(path.with_name("report.html"), path.with_name("report.pdf"))
        click.echo(f"report: {path.with_name('report.pdf')}")
        for problem in check.broken_images + check.overflowing:
            click.echo(f"report.pdf: {problem}", err=True)
    except BrowserMissing as exc:
        if pdf == "yes":
            raise EdgepruneError(str(exc)) from exc
        click.echo(f"report.pdf: not written: {exc}", err=True)


@cli.command("bench")
@click.option("--device", "addresses", multiple=True, metavar="[NAME=]ssh://[user@]host[:port][/path]",
              help="A device to bench over SSH (repeatable); a ~/.ssh/config alias works as host; /path is the "
                   "bundle folder there (/~/path: under the home folder; default ~/edgeprune-bundle); NAME (default: "
                   "the host) names its result file and report column.")
@click.option("--devices", "devices_file", type=click.Path(path_type=Path), default=None,
              help="A TOML file of devices: [devices.NAME] tables with address, bench, install, python, and an "
                   "optional [defaults] table (docs/devices.md).")
@click.option("--bundle", "bundle_dir", type=click.Path(path_type=Path), default=Path("build/bundle"),
              show_default=True, help="The bundle to copy to every device and bench there.")
@click.option("--results", "results_dir", type=click.Path(path_type=Path), default=Path("build/results"),
              show_default=True, help="Folder the results are fetched into, one NAME.json per device.")
@click.option("--bench-options", default=None, metavar="'OPTIONS'",
              help="runner bench options for every device, before each device's own (e.g. '--rounds 3').")
@click.option("--ssh-config", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Another OpenSSH client configuration file (ssh -F FILE) instead of ~/.ssh/config.")
@click.option("--connect-timeout", type=click.IntRange(1, 600), default=10, show_default=True,
              help="Seconds ssh waits for each device to answer before it counts as unreachable.")
@click.option("--quiet", is_flag=True, help="No progress lines (the summary and errors are still printed).")
def bench_cmd(addresses, devices_file, bundle_dir, results_dir, bench_options, ssh_config, connect_timeout,
              quiet) -> None:
    """Bench the bundle on remote devices over SSH, all at once, and fetch every result into --results.

    Per device: copy only the files it does not already hold (by sha256), install the runner's requirements when
    needed (the bundle's install script; carried wheels offline), run `runner bench --label NAME`, fetch the result.
    A device that fails is one sentence in the summary and the others are still measured; the exit code is 1 when
    any device failed, 2 for bad input. Then: harness report RESULTS/*.json (make report).
    """
    from harness.fleet.devices import bench_options as parse_options, fleet
    from harness.fleet.run import DevicesFailed, Reporter, bench_fleet, summary

    if ssh_config is not None and not ssh_config.is_file():
        raise EdgepruneError(f"--ssh-config {ssh_config} is not a file.")
    common = parse_options(bench_options, "--bench-options") if bench_options else ()
    devices = fleet(addresses, devices_file, common)
    problem = output_problem(results_dir, folder=True, reads=[bundle_dir])
    if problem:
        raise EdgepruneError(f"--results {results_dir} {problem}.")
    outcomes = bench_fleet(devices, bundle_dir, results_dir, config=ssh_config, connect_timeout=connect_timeout,
                           report=Reporter(quiet))
    for line in summary(outcomes):
        click.echo(line)
    failed = [o.device.name for o in outcomes if not o.ok]
    if failed:
        raise DevicesFailed(f"{len(failed)} of {len(outcomes)} device(s) could not be measured "
                            f"({', '.join(failed)}); the others' results are in {results_dir}.")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except EdgepruneError as exc:   # messages quote manifests and results: shown terminal-safe
        click.echo(f"error: {terminal_safe(exc)}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("interrupted: finished runs are kept and resume on the next call.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted: finished runs are kept and resume on the next call.", err=True)
        sys.exit(130)
