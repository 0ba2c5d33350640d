"""Structured pruning: remove whole neurons/channels/heads/layers from the trained baseline, then fine-tune.

The result is a smaller dense model (its ONNX file is smaller and faster, unlike unstructured sparsity). Its
variant stores the slicing plan in `model["plan"]`, so Variant.build rebuilds it from the run folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from harness.data import TaskData
from harness.experiments.baseline import trained_baseline
from harness.experiments.settings import TrainSettings
from harness.experiments.store import ensure_config, experiment_folder, variant_name
from harness.experiments.variant import Variant, is_finished, load_variant, save_variant
from harness.structured import prune_structured, structure_ratio
from harness.training import seed_everything, train
from runners.progress import Progress


@dataclass(frozen=True)
class StructuredSettings:
    """One structured pruning of the trained baseline."""
    kind: str = "neurons"          # neurons | channels | heads | layers
    importance: str = "l1"         # l1 | l2: norm of a unit's weights
    ratio: float = 0.5             # fraction of the units of every group removed
    round_to: int = 0              # kept widths rounded up to a multiple of this (0: no rounding)
    include_next: bool = False     # importance also counts the unit's input columns in the next layer
    finetune_epochs: int = 1       # 0: no fine-tuning

    @property
    def method(self) -> str:
        return "layers" if self.kind == "layers" else f"{self.kind}-{self.importance}"


def structured_pruning(root, ts: TrainSettings, ss: StructuredSettings, task: TaskData, plan_index: int = 0,
                       quiet: bool = False) -> Variant:
    """The pruned (and fine-tuned) variant; reused when its content-addressed folder is finished.

    Its iteration is 1 (one pruning step from the baseline, as a round is everywhere); `plan_index`, its position
    in the plan's list of structured variants, orders the report's tables and is not part of the run's name."""
    folder = experiment_folder(root, ts, "structured", ss)
    if is_finished(folder):
        variant = load_variant(folder)
        variant.iteration = 1      # runs made before iteration meant a round stored the plan position here
        variant.extra = {**variant.extra, "plan_index": plan_index}
        return variant
    base = trained_baseline(root, ts, task, quiet)
    ensure_config(folder, ss)
    model, plan = prune_structured(base.build(task), ss.kind, ss.ratio, ss.importance, ss.round_to, ss.include_next)
    info = None
    if ss.finetune_epochs > 0:
        seed_everything(ts.seed)
        info = train(model, task.train_x, task.train_y, dataclasses.replace(ts.train_config, epochs=ss.finetune_epochs),
                     seed=ts.seed, label=f"structured {ss.method} {ss.ratio:g} fine-tune", quiet=quiet)
    variant = Variant(name=variant_name(ts, "structured", f"{ss.method}-r{round(ss.ratio * 100)}"
                                        + (f"-round{ss.round_to}" if ss.round_to else "")),
                      task=ts.task, experiment="structured", method=ss.method, iteration=1, seed=ts.seed,
                      model={**base.model, "plan": plan},
                      extra={"structure_ratio": structure_ratio(plan), "finetuned": ss.finetune_epochs > 0,
                             "round_to": ss.round_to, "importance": ss.importance, "structure": ss.kind,
                             "plan_index": plan_index})
    variant = save_variant(variant, model, task, folder, **({"train": info} if info else {}))
    m = variant.metrics
    Progress("structured", quiet=quiet).finished(
        f"  structured {ss.method} {ss.ratio:g}: params {m['params']} accuracy {m['accuracy']:.2%} "
        f"(dense {base.metrics['accuracy']:.2%})", timing=False)
    return variant
