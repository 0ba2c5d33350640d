"""Iterative magnitude pruning with rewinding: prune, rewind the survivors to the initial weights, retrain."""

from __future__ import annotations

import sys

import torch
from torch import nn

from harness.data import TaskData
from harness.experiments.baseline import trained_baseline, train_folder, variant_name
from harness.experiments.repeated import calibration_batch
from harness.experiments.settings import PruneSettings, TrainSettings
from harness.experiments.store import ensure_config, load_tensors, settings_hash
from harness.experiments.variant import Variant, is_finished, load_variant, save_variant
from harness.pruning import PruneContext, get_method
from harness.training import seed_everything, train


def rewind(model: nn.Module, init_state: dict[str, torch.Tensor]) -> None:
    """Load the initial weights into a masked model: `layers.0.weight` goes to `layers.0.weight_orig`.

    Masks stay as they are, so pruned weights stay zero while the survivors restart from initialisation.
    """
    own = model.state_dict()
    aligned = {}
    for key, value in init_state.items():
        target = key if key in own else key.replace(".weight", ".weight_orig") if key.endswith(".weight") else key
        if target not in own:
            raise KeyError(f"initial weights have {key!r}, the model has no matching parameter")
        aligned[target] = value
    masks = {k: v for k, v in own.items() if k.endswith("_mask")}
    model.load_state_dict({**aligned, **masks})


def imp_with_rewinding(root, ts: TrainSettings, ps: PruneSettings, rounds: int, task: TaskData,
                       quiet: bool = False) -> list[Variant]:
    base = trained_baseline(root, ts, task, quiet)
    init_state = load_tensors(train_folder(root, ts) / "init.pt")
    folder = train_folder(root, ts) / f"imp-{settings_hash(ps)}"
    ensure_config(folder, ps)
    prune_step = get_method(ps.method)
    ctx = PruneContext(calibration=calibration_batch(task, ps), seed=ts.seed)
    variants, previous = [], base
    for it in range(rounds + 1):
        it_folder = folder / f"it{it}"
        if is_finished(it_folder):   # resume: finished rounds are loaded, never recomputed
            previous = load_variant(it_folder)
            variants.append(previous)
            continue
        model = previous.build(task, with_masks=True)
        info = None
        if it > 0:
            ctx.seed = ts.seed * 1000 + it
            prune_step(model, ps.amount, ctx)
            rewind(model, init_state)
            seed_everything(ts.seed)
            info = train(model, task.train_x, task.train_y, ts.train_config, seed=ts.seed,
                         label=f"imp {ps.method} round {it}/{rounds}", quiet=quiet)
        variant = Variant(name=variant_name(ts, "imp", ps.method, it), task=ts.task, experiment="imp",
                          method=ps.method, iteration=it, seed=ts.seed, model=previous.model,
                          extra={"amount_per_round": ps.amount})
        previous = save_variant(variant, model, task, it_folder, **({"train": info} if info else {}))
        variants.append(previous)
        if not quiet:
            m = previous.metrics
            print(f"  imp {ps.method} it{it}: sparsity {m['sparsity']:.1%} accuracy {m['accuracy']:.2%}",
                  file=sys.stderr)
    return variants
