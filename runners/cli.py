"""``runner``: the device-side command line (console script ``runner = runners.cli:main``).

    runner bench BUNDLE --out RESULT.json [--provider NAME[,NAME]] [--provider-option NAME:KEY=VALUE]
                 [--threads N] [--inter-op-threads N] [--graph-optimization LEVEL] [--execution-mode MODE]
                 [--no-spinning] [--batch-size B] [--warmup N] [--min-runs N] [--min-seconds S]
                 [--api iobinding|run] [--rounds R] [--models GLOB] [--label NAME] [--strict]
    runner device            # print this device's facts as JSON (providers included)
    runner providers         # the execution providers this onnxruntime build offers, one a line
    runner install [BUNDLE]  # a venv beside the bundle with the runner's requirements (carried wheels offline)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from runners import __version__
from runners.bench import run_bench, write_result
from runners.bundle import load_manifest
from runners.errors import EXIT_BAD_INPUT, EXIT_MODEL_ERRORS, BundleError
from runners.providers import parse_options, split_names
from runners.settings import CALL_APIS, EXECUTION_MODES, GRAPH_OPTIMIZATION_LEVELS, BenchSettings

# Every option's default is the settings type's, so `runner bench` and run_bench(BenchSettings()) measure alike.
_DEFAULTS = BenchSettings()


class InputError(click.ClickException):
    """An expected mistake in the command's input: one sentence on stderr, exit code 2, no traceback."""

    exit_code = EXIT_BAD_INPUT


class ModelsFailed(click.ClickException):
    """--strict: some files could not be measured (the result is written)."""

    exit_code = EXIT_MODEL_ERRORS


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; give a file name such as {out / 'result.json'}.")
    parent = out.parent
    if not parent.is_dir():
        raise InputError(f"Output folder {parent} does not exist; create it or choose another --out.")
    if not os.access(parent, os.W_OK):
        raise InputError(f"Output folder {parent} is not writable; choose another --out.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="runner")
def main() -> None:
    """edgeprune device runner: measure a bundle's ONNX models on this device (no torch needed)."""


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path, file_okay=True, dir_okay=True))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Result JSON to write (edgeprune.result/1); written atomically.")
@click.option("--provider", "providers", multiple=True, default=_DEFAULTS.providers, show_default=True,
              metavar="NAME[,NAME]",
              help="Execution provider(s), benched side by side (every file with each, one after the other); "
                   "onnxruntime's name or its short name (cpu, openvino, cuda). Repeatable or comma-separated; "
                   "'runner providers' lists what this onnxruntime build offers.")
@click.option("--provider-option", "provider_options", multiple=True, metavar="NAME:KEY=VALUE",
              help="An option for one provider's sessions, e.g. openvino:device_type=CPU. Repeatable.")
@click.option("--threads", type=click.IntRange(min=0), default=_DEFAULTS.threads, show_default=True,
              help="onnxruntime intra-op threads; 0 keeps onnxruntime's default.")
@click.option("--inter-op-threads", type=click.IntRange(min=0), default=_DEFAULTS.inter_op_threads,
              show_default=True, help="onnxruntime inter-op threads (used by --execution-mode parallel); 0 keeps "
                                      "onnxruntime's default.")
@click.option("--graph-optimization", type=click.Choice(tuple(GRAPH_OPTIMIZATION_LEVELS)),
              default=_DEFAULTS.graph_optimization, show_default=True,
              help="onnxruntime's graph optimisation level (all runs a small CNN 2x faster than extended here).")
@click.option("--execution-mode", type=click.Choice(tuple(EXECUTION_MODES)), default=_DEFAULTS.execution_mode,
              show_default=True, help="Run the graph's nodes one after another or independent ones in parallel.")
@click.option("--spinning/--no-spinning", default=_DEFAULTS.spinning, show_default=True,
              help="Let onnxruntime's worker threads spin while waiting for work (its default): lower latency, "
                   "busy cores.")
@click.option("--batch-size", type=click.IntRange(min=1), default=_DEFAULTS.batch_size, show_default=True,
              help="Rows per timed inference (the first rows of the eval set).")
@click.option("--warmup", type=click.IntRange(min=0), default=_DEFAULTS.warmup, show_default=True,
              help="Untimed runs after the first inference.")
@click.option("--min-runs", type=click.IntRange(min=1), default=_DEFAULTS.min_runs, show_default=True,
              help="Timed runs continue until at least this many ...")
@click.option("--min-seconds", type=click.FloatRange(min=0), default=_DEFAULTS.min_seconds, show_default=True,
              help="... and at least this many seconds have passed.")
@click.option("--api", type=click.Choice(CALL_APIS), default=_DEFAULTS.api, show_default=True,
              help="How each timed call is made: 'iobinding' binds the input once and times the model plus "
                   "onnxruntime's dispatch; 'run' times sess.run(None, feed), as notebooks do (adds the Python "
                   "binding's per-call conversions).")
@click.option("--rounds", type=click.IntRange(min=1), default=_DEFAULTS.rounds, show_default=True,
              help="Timing windows per file: after every file is measured once, each is timed again R-1 times, "
                   "file after file, and its latency pools all windows (latency_ms.p50_rounds lists each "
                   "window's p50). Spreads a noisy machine's slow spells over all files.")
@click.option("--eval-batch-size", type=click.IntRange(min=1), default=_DEFAULTS.eval_batch_size, show_default=True,
              help="Rows per inference when measuring accuracy.")
@click.option("--models", "models_glob", default=_DEFAULTS.models, metavar="GLOB",
              help="Only models whose name matches this glob (e.g. 'mnist-*').")
@click.option("--label", default=None, help="Device label in the result (default: hostname).")
@click.option("--strict", is_flag=True, help="Exit 1 if any model file could not be measured.")
def bench(bundle: Path, out: Path, providers: tuple[str, ...], provider_options: tuple[str, ...], threads: int,
          inter_op_threads: int, graph_optimization: str, execution_mode: str, spinning: bool, batch_size: int,
          warmup: int, min_runs: int, min_seconds: float, api: str, rounds: int, eval_batch_size: int,
          models_glob: str | None, label: str | None, strict: bool) -> None:
    """Measure every ONNX file of BUNDLE and write the result JSON to --out."""
    _check_out(out)
    names = split_names(providers)
    try:
        options = parse_options(provider_options, names)
    except ValueError as exc:
        raise InputError(f"--provider-option: {exc}.") from None
    settings = BenchSettings(threads=threads, batch_size=batch_size, warmup=warmup, min_runs=min_runs,
                             min_seconds=min_seconds, api=api, rounds=rounds, eval_batch_size=eval_batch_size,
                             models=models_glob, providers=tuple(names), provider_options=options,
                             graph_optimization=graph_optimization, inter_op_threads=inter_op_threads,
                             execution_mode=execution_mode, spinning=spinning)
    try:
        manifest = load_manifest(bundle)
        click.echo(f"runner {__version__}: bundle {bundle} ({manifest.get('bundle_id') or 'no bundle_id'}), "
                   f"providers {', '.join(names)}, threads {threads or 'default'}, batch {batch_size}, "
                   f"graph optimisation {graph_optimization}, calls via {api}"
                   + (f", {rounds} rounds" if rounds > 1 else ""), err=True)
        result = run_bench(bundle, settings, label=label, progress=lambda line: click.echo(line, err=True),
                           manifest=manifest)
    except BundleError as exc:
        raise InputError(str(exc)) from None
    try:
        write_result(result, out)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"Could not write {out}: {exc}.") from None
    n_err = sum(1 for m in result["models"] if m["status"] != "ok")
    missing = result["settings"].get("providers_unavailable") or {}
    click.echo(f"wrote {out}: {len(result['models']) - n_err} ok, {n_err} error"
               + (f", {len(missing)} provider(s) not available" if missing else ""), err=True)
    if strict and (n_err or missing):
        raise ModelsFailed(f"{n_err} model file(s) could not be measured and {len(missing)} provider(s) were not "
                           f"available (see 'error' and settings.providers_unavailable in {out}).")


@main.command()
@click.option("--label", default=None, help="Device label (default: hostname).")
def device(label: str | None) -> None:
    """Print this device's facts (the 'device' object of a result, with the providers this onnxruntime offers) and
    its CPU's state now (per-core frequency, temperatures, throttling) as JSON."""
    from runners.device import device_facts
    from runners.thermal import snapshot

    click.echo(json.dumps({**device_facts(label), "state_now": snapshot()}, indent=2))


@main.command()
def providers() -> None:
    """List the execution providers this onnxruntime build offers (what --provider accepts), one a line."""
    from runners.session import check_dependencies

    try:
        check_dependencies()
    except BundleError as exc:
        raise InputError(str(exc)) from None
    import onnxruntime as ort

    for name in ort.get_available_providers():
        click.echo(name)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False)
@click.pass_context
def install(ctx: click.Context) -> None:
    """Create a venv beside a bundle holding the runner's requirements: from the bundle's carried wheels with
    --no-index when they match this device, else from the package registry (python3 BUNDLE/runner install -h)."""
    from runners.install import main as install_main

    ctx.exit(install_main(list(ctx.args)))


if __name__ == "__main__":  # pragma: no cover
    main()
