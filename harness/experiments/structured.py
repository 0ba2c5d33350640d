"""Structured pruning: remove whole neurons/channels/heads/layers from the trained baseline, then fine-tune.

The result is a smaller dense model (its ONNX file is smaller and faster, unlike unstructured sparsity). Its
variant stores the slicing plan in `model["plan"]`, so Variant.build rebuilds it from the run folder.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass

from torch import nn

from harness.data import TaskData
from harness.errors import EdgepruneError
from harness.experiments.baseline import trained_baseline
from harness.experiments.settings import TrainSettings, task_loss
from harness.experiments.store import ensure_config, experiment_folder, variant_name
from harness.experiments.variant import Variant, is_finished, load_variant, save_variant
from harness import metrics
from harness.structured import KINDS, SCOPES, IMPORTANCE, prune_structured, structure_ratio
from harness.training import SCHEDULES, TrainConfig, train

EXAMPLE_ROWS = 16                  # training rows that trace the dependency graph and check each group
UNDER_PRUNED = 0.5                 # a variant removing less than this share of the units it was asked to is flagged


@dataclass(frozen=True)
class StructuredSettings:
    """One structured pruning of the trained baseline. New fields keep the old behaviour at their defaults, so
    runs made before them keep their folders."""
    kind: str = "neurons"          # neurons (Linear units) | channels (Conv channels and Linear units) | heads | layers
    importance: str = "l1"         # l1 | l2 (group norms of the units' weights) | taylor (|w dL/dw|) | random
    ratio: float = 0.5             # fraction of the units of every group removed (of all units with scope global)
    round_to: int = 0              # kept widths rounded up to a multiple of this (0: no rounding)
    include_next: bool = False     # importance also counts the unit's input columns in the next layer
    finetune_epochs: int = 1       # 0: no fine-tuning
    coupled: bool = False          # also prune groups whose units several layers share (residual adds)
    scope: str = "uniform"         # uniform: every group loses `ratio`; global: one ranking over all groups
    floor: float = 0.0             # fraction of each group always kept (a unit at least): no layer vanishes
    untouchable: tuple[str, ...] = ()   # modules (with their submodules) never pruned; the classifier never is
    calibration_samples: int = 256      # labelled training rows for taylor importance
    finetune_lr: float = 0.0            # 0: the training's learning rate
    finetune_schedule: str = "constant"  # harness.training.SCHEDULES, over the fine-tune's steps

    def __post_init__(self):
        for field_name, value, known in (("kind", self.kind, KINDS), ("scope", self.scope, SCOPES),
                                         ("importance", self.importance, IMPORTANCE)):
            if value not in known:
                raise EdgepruneError(f"structured {field_name} {value!r} is not one of {', '.join(known)}.")
        if self.finetune_schedule not in SCHEDULES:
            raise EdgepruneError(f"structured finetune_schedule {self.finetune_schedule!r} is not one of "
                                 f"{', '.join(SCHEDULES)}.")
        if not self.finetune_lr >= 0:
            raise EdgepruneError(f"structured finetune_lr {self.finetune_lr} must be 0 (the training's) or more.")
        if not 0 <= self.ratio <= 1 or not 0 <= self.floor <= 1:
            raise EdgepruneError(f"structured ratio {self.ratio} and floor {self.floor} must be fractions 0-1.")
        object.__setattr__(self, "untouchable", tuple(self.untouchable))

    @property
    def method(self) -> str:
        return "layers" if self.kind == "layers" else f"{self.kind}-{self.importance}"

    @property
    def label(self) -> str:
        """The variant name's part: method, ratio, and the choices that would otherwise give two variants one name."""
        extra = [f"round{self.round_to}" if self.round_to else "", "global" if self.scope == "global" else "",
                 f"floor{round(self.floor * 100)}" if self.floor else ""]
        return "-".join([f"{self.method}-r{round(self.ratio * 100)}", *filter(None, extra)])


def finetune_config(ts: TrainSettings, ss: StructuredSettings) -> TrainConfig:
    """The training's settings with the fine-tune's epochs, learning rate and schedule."""
    return dataclasses.replace(ts.train_config, epochs=ss.finetune_epochs, lr=ss.finetune_lr or ts.lr,
                               schedule=ss.finetune_schedule)


def kept_widths(dense: nn.Module, pruned: nn.Module) -> dict[str, list[int]]:
    """Layer name -> [dense width, kept width] for every Linear/Conv whose output width changed."""
    def widths(model: nn.Module) -> dict[str, int]:
        return {name: m.out_features if isinstance(m, nn.Linear) else m.out_channels
                for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))}
    before, after = widths(dense), widths(pruned)
    return {name: [w, after[name]] for name, w in before.items() if name in after and after[name] != w}


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
    dense = base.build(task)
    example = task.train_x[:EXAMPLE_ROWS]
    rows = ts.streams.calibration_rows(len(task.train_x), ss.calibration_samples)
    calibration = (task.train_x[rows], task.train_y[rows])
    model, plan = prune_structured(dense, ss.kind, ss.ratio, ss.importance, ss.round_to, ss.include_next,
                                   example=example, scope=ss.scope, floor=ss.floor, coupled=ss.coupled,
                                   untouchable=ss.untouchable, calibration=calibration,
                                   loss_fn=task_loss(task), seed=ts.streams.structured_seed())
    info = None
    if ss.finetune_epochs > 0:
        ts.streams.seed_training()
        info = train(model, task.train_x, task.train_y, finetune_config(ts, ss), seed=ts.streams.data_order,
                     label=f"structured {ss.method} {ss.ratio:g} fine-tune", quiet=quiet, loss_fn=task_loss(task))
    achieved = structure_ratio(plan)
    dense_params = metrics.count_parameters(dense)[0]
    variant = Variant(name=variant_name(ts, "structured", ss.label),
                      task=ts.task, experiment="structured", method=ss.method, iteration=1, seed=ts.seed,
                      model={**base.model, "plan": plan},
                      extra={"structure_ratio": achieved, "finetuned": ss.finetune_epochs > 0,
                             "round_to": ss.round_to, "importance": ss.importance, "structure": ss.kind,
                             "plan_index": plan_index, "structure_ratio_asked": ss.ratio,
                             "under_pruned": achieved < UNDER_PRUNED * ss.ratio, "scope": ss.scope,
                             "coupled": ss.coupled, "kept_widths": kept_widths(dense, model),
                             "skipped_groups": plan.get("skipped", []), "dense_params": dense_params,
                             "macs": metrics.count_macs(model, example),
                             "dense_macs": metrics.count_macs(dense, example)})
    variant = save_variant(variant, model, task, folder, **({"train": info} if info else {}))
    if not quiet:
        print_outcome(variant, base.metrics["accuracy"])
    return variant


def print_outcome(variant: Variant, dense_accuracy: float) -> None:
    m, e = variant.metrics, variant.extra
    print(f"  structured {variant.method} {e['structure_ratio_asked']:g}: params {m['params']:,} of "
          f"{e['dense_params']:,} ({m['params'] / e['dense_params']:.1%}), removed {e['structure_ratio']:.1%} of the "
          f"units asked, accuracy {m['accuracy']:.2%} (dense {dense_accuracy:.2%})", file=sys.stderr)
    if e["under_pruned"]:
        print(f"  WARNING: {variant.name} removed {e['structure_ratio']:.1%} of its units, less than half of the "
              f"{e['structure_ratio_asked']:.0%} asked", file=sys.stderr)
    for skip in e["skipped_groups"]:
        print(f"    left whole: {skip['root']} ({skip['size']} units): {skip['reason']}", file=sys.stderr)
