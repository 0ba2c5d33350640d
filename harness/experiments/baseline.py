"""Train the dense model once per settings, saving the initial weights before training."""

from __future__ import annotations

from pathlib import Path

from harness.data import TaskData
from harness.experiments.settings import TrainSettings
from harness.experiments.store import ensure_config, save_tensors, settings_hash
from harness.experiments.variant import Variant, is_finished, load_variant, save_variant
from harness.models import build_model
from harness.training import seed_everything, train


def train_folder(root: Path, ts: TrainSettings) -> Path:
    return Path(root) / f"train-{settings_hash(ts)}"


def variant_name(ts: TrainSettings, experiment: str, method: str | None = None, iteration: int | None = None) -> str:
    method = method.replace(":", "of") if method else method      # "2:4" -> "2of4": names become file names
    parts = [ts.task, ts.model, experiment, method, f"it{iteration}" if iteration is not None else None, f"s{ts.seed}"]
    return "-".join(p for p in parts if p)


def trained_baseline(root: Path, ts: TrainSettings, task: TaskData, quiet: bool = False) -> Variant:
    """The trained dense model (experiment `baseline`, iteration 0); reused when already finished."""
    folder = train_folder(Path(root), ts)
    if is_finished(folder):
        return load_variant(folder)
    ensure_config(folder, ts)
    seed_everything(ts.seed)
    model = build_model(ts.model, task, **ts.kwargs)
    save_tensors(folder / "init.pt", model.state_dict())
    info = train(model, task.train_x, task.train_y, ts.train_config, seed=ts.seed,
                 label=f"{ts.task}/{ts.model} seed {ts.seed}", quiet=quiet)
    variant = Variant(name=variant_name(ts, "baseline"), task=ts.task, experiment="baseline", method="dense",
                      iteration=0, seed=ts.seed, model={"name": ts.model, "kwargs": ts.kwargs})
    return save_variant(variant, model, task, folder, train=info)
