"""Repeated pruning: prune `amount` of the remaining weights each round, no retraining, no reset."""

from __future__ import annotations

import sys

from harness.data import TaskData
from harness.experiments.baseline import trained_baseline, train_folder, variant_name
from harness.experiments.settings import PruneSettings, TrainSettings
from harness.experiments.store import ensure_config, settings_hash
from harness.experiments.variant import Variant, is_finished, load_variant, save_variant
from harness.pruning import PruneContext, get_method


def calibration_batch(task: TaskData, ps: PruneSettings):
    """Training inputs that data-aware methods (e.g. Wanda) score weights with; never the eval split."""
    return task.train_x[: ps.calibration_samples]


def repeated_pruning(root, ts: TrainSettings, ps: PruneSettings, rounds: int, task: TaskData,
                     quiet: bool = False) -> list[Variant]:
    """Iterations 0..rounds; iteration k has 1 - (1 - amount)^k of the prunable weights removed."""
    base = trained_baseline(root, ts, task, quiet)
    folder = train_folder(root, ts) / f"repeated-{settings_hash(ps)}"
    ensure_config(folder, ps)
    prune_step = get_method(ps.method)
    ctx = PruneContext(calibration=calibration_batch(task, ps), seed=ts.seed)
    variants, previous = [], base
    for it in range(rounds + 1):
        it_folder = folder / f"it{it}"
        if is_finished(it_folder):
            previous = load_variant(it_folder)
            variants.append(previous)
            continue
        model = previous.build(task, with_masks=True)
        if it > 0:
            ctx.seed = ts.seed * 1000 + it
            prune_step(model, ps.amount, ctx)
        variant = Variant(name=variant_name(ts, "repeated", ps.method, it), task=ts.task, experiment="repeated",
                          method=ps.method, iteration=it, seed=ts.seed, model=previous.model,
                          extra={"amount_per_round": ps.amount})
        previous = save_variant(variant, model, task, it_folder)
        variants.append(previous)
        if not quiet:
            m = previous.metrics
            print(f"  repeated {ps.method} it{it}: sparsity {m['sparsity']:.1%} accuracy {m['accuracy']:.2%}",
                  file=sys.stderr)
    return variants
