"""Train the dense model once per settings, saving the initial weights before training."""

from __future__ import annotations

from pathlib import Path

from harness.data import TaskData
from harness.experiments.settings import TrainSettings, task_loss
from harness.experiments.store import ensure_config, save_tensors, train_folder, variant_name
from harness.experiments.variant import Variant, build_architecture, is_finished, load_variant, save_variant
from harness.training import seed_everything, train


def trained_baseline(root: Path, ts: TrainSettings, task: TaskData, quiet: bool = False) -> Variant:
    """The trained dense model (experiment `baseline`, iteration 0); reused when already finished."""
    folder = train_folder(Path(root), ts)
    if is_finished(folder):
        return load_variant(folder)
    ensure_config(folder, ts)
    seed_everything(ts.seed)
    architecture = {"name": ts.model, "kwargs": ts.kwargs}
    model = build_architecture(architecture, task)
    save_tensors(folder / "init.pt", model.state_dict())
    info = train(model, task.train_x, task.train_y, ts.train_config, seed=ts.seed,
                 label=f"{ts.task}/{ts.model} seed {ts.seed}", quiet=quiet, loss_fn=task_loss(task))
    variant = Variant(name=variant_name(ts, "baseline"), task=ts.task, experiment="baseline", method="dense",
                      iteration=0, seed=ts.seed, model=architecture)
    return save_variant(variant, model, task, folder, train=info)
