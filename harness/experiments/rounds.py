"""The loop shared by repeated pruning and IMP: one finished folder per round, resumed where it stopped."""

from __future__ import annotations

from typing import Callable, Optional

from torch import nn

from harness.data import TaskData
from harness.experiments.baseline import trained_baseline
from harness.experiments.settings import PruneSettings, TrainSettings, task_loss
from harness.experiments.store import ensure_config, experiment_folder, variant_name
from harness.experiments.variant import Variant, is_finished, load_variant, save_variant
from harness.pruning import PruneContext, get_method
from harness.seeds import SHARED, SeedStreams
from runners.progress import Progress

# Called after each round's pruning step with (model, round); may retrain, returns extra metrics or None.
AfterPrune = Callable[[nn.Module, int], Optional[dict]]


def calibration_batch(task: TaskData, ps: PruneSettings, streams: SeedStreams | None = None):
    """Training inputs and their labels (the same rows) that data-aware methods score weights with (Wanda the
    inputs, gradient-based methods both); never the eval split. Which rows: see SeedStreams.calibration_rows
    (without streams, the first rows)."""
    streams = streams or SeedStreams.derive(0, SHARED)
    rows = streams.calibration_rows(len(task.train_x), ps.calibration_samples)
    return task.train_x[rows], task.train_y[rows]


def round_folder(folder, it: int):
    """Round `it`'s variant folder inside an iterative experiment's folder."""
    return folder / f"it{it}"


def round_folders(root, ts: TrainSettings, ps: PruneSettings, rounds: int, experiment: str) -> list:
    """The variant folders of iterations 0..rounds, in order (what the experiment graph exports)."""
    folder = experiment_folder(root, ts, experiment, ps)
    return [round_folder(folder, it) for it in range(rounds + 1)]


def pruning_rounds(root, ts: TrainSettings, ps: PruneSettings, rounds: int, task: TaskData, experiment: str,
                   after_prune: AfterPrune | None = None, quiet: bool = False) -> list[Variant]:
    """Iterations 0..rounds: iteration k prunes `ps.amount` of iteration k-1's remaining weights.

    Finished rounds are loaded, never recomputed, so an interrupted run resumes at the last finished round.
    """
    base = trained_baseline(root, ts, task, quiet)
    folder = experiment_folder(root, ts, experiment, ps)
    ensure_config(folder, ps)
    prune_step = get_method(ps.method)
    inputs, labels = calibration_batch(task, ps, ts.streams)
    ctx = PruneContext(calibration=inputs, calibration_labels=labels, seed=ts.seed)
    if task_loss(task) is not None:
        ctx.loss_fn = task_loss(task)
    variants, previous = [], base
    # Finished rounds are a prefix and load in a moment: the bar and its time left count the rounds still to run.
    todo = [it for it in range(rounds + 1) if not is_finished(round_folder(folder, it))]
    with Progress(f"{experiment} {ps.method}", total=len([it for it in todo if it > 0]), unit="round",
                  quiet=quiet or not todo) as progress:
        for it in range(rounds + 1):
            it_folder = round_folder(folder, it)
            if is_finished(it_folder):
                previous = load_variant(it_folder)
                variants.append(previous)
                continue
            model = previous.build(task, with_masks=True)
            extra_metrics = None
            if it > 0:
                ctx.seed = ts.streams.pruning_seed(it)
                prune_step(model, ps.amount, ctx)
                if after_prune is not None:
                    extra_metrics = after_prune(model, it)
            variant = Variant(name=variant_name(ts, experiment, ps.method, it), task=ts.task, experiment=experiment,
                              method=ps.method, iteration=it, seed=ts.seed, model=previous.model,
                              extra={"amount_per_round": ps.amount})
            previous = save_variant(variant, model, task, it_folder, **(extra_metrics or {}))
            variants.append(previous)
            progress.update(1 if it > 0 else 0)
            m = previous.metrics
            progress.finished(f"  {experiment} {ps.method} it{it}: sparsity {m['sparsity']:.1%} "
                              f"accuracy {m['accuracy']:.2%}")
    return variants
