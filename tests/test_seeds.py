"""harness.seeds: one seeded stream per source of randomness, derived from the run seed; the old shared seeding kept
bit for bit under its own name, and the streams named in the run folder."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from harness.experiments import baseline as baseline_mod
from harness.experiments.baseline import trained_baseline
from harness.experiments.rounds import calibration_batch
from harness.experiments.settings import PruneSettings, TrainSettings
from harness.experiments.store import load_tensors, settings_hash, train_folder
from harness.seeds import SHARED, SPLIT, STREAMS, SeedStreams, derived_seed
from harness.models import build_model
from harness.training import seed_everything, train


def recording_batches(monkeypatch) -> list[list[torch.Tensor]]:
    """Patch the baseline's trainer so that every training run records the first rows of each batch it feeds."""
    runs: list[list[torch.Tensor]] = []

    def recording_train(model, *args, **kwargs):
        seen: list[torch.Tensor] = []
        handle = model.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0][:2].clone()))
        try:
            return train(model, *args, **kwargs)
        finally:
            handle.remove()
            runs.append(seen)

    monkeypatch.setattr(baseline_mod, "train", recording_train)
    return runs


def test_split_streams_are_distinct_and_reproducible():
    streams = SeedStreams.derive(0, SPLIT)
    seeds = [getattr(streams, name) for name in STREAMS]
    assert len(set(seeds)) == len(STREAMS), "every source draws from its own seed"
    assert SeedStreams.derive(0, SPLIT) == streams
    assert SeedStreams.derive(1, SPLIT).init != streams.init
    # The accident being fixed: the global generator (init) and a data-order generator seeded alike draw the same.
    torch.manual_seed(0)
    from_global = torch.randperm(50)
    assert torch.equal(from_global, torch.randperm(50, generator=torch.Generator().manual_seed(0)))
    split = [torch.randperm(50, generator=torch.Generator().manual_seed(s)) for s in (streams.init, streams.data_order)]
    assert not torch.equal(*split)


def test_shared_streams_are_the_run_seed_itself():
    shared = SeedStreams.derive(7, SHARED)
    assert (shared.init, shared.data_order, shared.dropout) == (7, 7, 7)
    assert shared.pruning_seed(3) == 7003 and shared.calibration is None


def test_unknown_mode_or_stream_is_refused():
    with pytest.raises(ValueError, match="seed streams"):
        SeedStreams.derive(0, "mixed")
    with pytest.raises(ValueError, match="seed stream 'shuffle'"):
        TrainSettings(seed_streams=SPLIT, seed_overrides=(("shuffle", 3),))


def test_derived_seeds_are_numpy_seed_sequence_spawns():
    child = np.random.SeedSequence(5).spawn(3)[2]
    assert derived_seed(5, 2) == int(child.generate_state(1)[0])


def test_changing_the_data_order_stream_alone_keeps_the_init_and_changes_the_batch_order(
        tmp_path, train_settings, tiny_task, monkeypatch):
    batches = recording_batches(monkeypatch)
    ts = dataclasses.replace(train_settings, seed_streams=SPLIT)
    other = dataclasses.replace(ts, seed_overrides=(("data_order", ts.streams.data_order + 1),))
    assert other.streams.init == ts.streams.init and other.streams.dropout == ts.streams.dropout
    a = trained_baseline(tmp_path, ts, tiny_task, quiet=True)
    b = trained_baseline(tmp_path, other, tiny_task, quiet=True)
    assert a.folder != b.folder
    init_a, init_b = (load_tensors(v.folder / "init.pt") for v in (a, b))
    assert all(torch.equal(init_a[k], init_b[k]) for k in init_a), "the initial weights did not move"
    first_a, first_b = batches
    assert len(first_a) == len(first_b) == 2 * 512 // 64
    assert not torch.equal(first_a[0], first_b[0]), "the batch order changed"
    assert not torch.equal(load_tensors(a.folder / "state.pt")["out.weight"],
                           load_tensors(b.folder / "state.pt")["out.weight"])


def test_changing_the_init_stream_alone_keeps_the_batch_order(tmp_path, train_settings, tiny_task, monkeypatch):
    batches = recording_batches(monkeypatch)
    ts = dataclasses.replace(train_settings, seed_streams=SPLIT)
    other = dataclasses.replace(ts, seed_overrides=(("init", ts.streams.init + 1),))
    a = trained_baseline(tmp_path, ts, tiny_task, quiet=True)
    b = trained_baseline(tmp_path, other, tiny_task, quiet=True)
    assert not torch.equal(load_tensors(a.folder / "init.pt")["out.weight"],
                           load_tensors(b.folder / "init.pt")["out.weight"])
    assert all(torch.equal(x, y) for x, y in zip(*batches)), "same data order"


def test_the_dropout_stream_is_its_own():
    """Dropout draws from torch's global generator, seeded for training by the dropout stream alone."""
    streams = SeedStreams.derive(0, SPLIT)
    other = SeedStreams.derive(0, SPLIT, overrides={"dropout": streams.dropout + 1})

    def mask(s: SeedStreams) -> torch.Tensor:
        s.seed_init()
        torch.rand(100)                  # what building a model draws does not reach dropout
        s.seed_training(after_init=True)
        return torch.nn.functional.dropout(torch.ones(200), 0.5, training=True)

    assert torch.equal(mask(streams), mask(streams))
    assert not torch.equal(mask(streams), mask(other))


def test_shared_streams_train_bit_for_bit_as_runs_did_before(tmp_path, train_settings, tiny_task):
    """The default settings reproduce the old recipe exactly: seed_everything(seed), build, train(seed=seed)."""
    assert train_settings.seed_streams == SHARED
    variant = trained_baseline(tmp_path, train_settings, tiny_task, quiet=True)
    seed_everything(train_settings.seed)
    model = build_model("ffn", tiny_task, hidden=32)
    train(model, tiny_task.train_x, tiny_task.train_y, train_settings.train_config, seed=train_settings.seed,
          quiet=True)
    state = load_tensors(variant.folder / "state.pt")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_seed_streams_name_the_run_folder_and_are_recorded(tmp_path, train_settings, tiny_task):
    split = dataclasses.replace(train_settings, seed_streams=SPLIT)
    assert settings_hash(TrainSettings()) == settings_hash(TrainSettings(seed_streams=SHARED))
    assert train_folder(tmp_path, split) != train_folder(tmp_path, train_settings), "old runs are not reused"
    variant = trained_baseline(tmp_path, split, tiny_task, quiet=True)
    config = json.loads((variant.folder / "config.json").read_text())
    assert config["seed_streams"] == SPLIT and config["streams"] == split.streams.as_dict()
    assert config["streams"]["data_order"] == split.streams.data_order != split.streams.init


def test_calibration_rows_are_sampled_by_their_own_stream(tiny_task):
    ps = PruneSettings(calibration_samples=32)
    first_x, _ = calibration_batch(tiny_task, ps, SeedStreams.derive(0, SHARED))
    assert np.array_equal(first_x, tiny_task.train_x[:32]), "shared streams keep the first rows"
    x0, y0 = calibration_batch(tiny_task, ps, SeedStreams.derive(0, SPLIT))
    x1, _ = calibration_batch(tiny_task, ps, SeedStreams.derive(1, SPLIT))
    assert len(x0) == 32 and not np.array_equal(x0, first_x) and not np.array_equal(x0, x1)
    rows = [int(np.flatnonzero((tiny_task.train_x == row).all(1))[0]) for row in x0]
    assert rows == sorted(set(rows)) and np.array_equal(y0, tiny_task.train_y[rows])


def test_exports_ask_for_split_streams():
    from click.testing import CliRunner

    from harness.cli import cli
    from harness.experiments.settings import PROFILES
    from harness.pipeline import ExportSettings, train_settings
    from harness.plans import PLANS

    assert ExportSettings().seed_streams == SPLIT
    assert train_settings(PLANS["mnist"], PROFILES["quick"], 3).streams.mode == SPLIT
    options = {p.name: p for p in cli.commands["export"].params}
    assert options["seed_streams"].default == SPLIT and set(options["seed_streams"].type.choices) == {SHARED, SPLIT}
    help_text = CliRunner().invoke(cli, ["export", "--help"]).output
    assert "--seed-streams" in help_text
