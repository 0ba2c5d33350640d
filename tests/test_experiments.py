"""harness.experiments: content-addressed run folders, the baseline, repeated pruning, IMP with rewinding, variants.

Every experiment runs on the conftest's tiny task (512 x 16, 3 classes), so a full training takes milliseconds.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from harness import metrics
from harness.experiments import baseline as baseline_mod
from harness.experiments import imp as imp_mod
from harness.experiments import variant as variant_mod
from harness.experiments.baseline import trained_baseline
from harness.experiments.imp import imp_with_rewinding, rewind
from harness.experiments.repeated import repeated_pruning
from harness.experiments.settings import PruneSettings, TrainSettings
from harness.experiments.store import load_tensors, settings_hash, train_folder
from harness.experiments.variant import Variant, is_finished, load_variant, save_variant
from harness.pruning import METHODS, global_prune, masks_of
from harness.training import train


def load_state(folder):
    return load_tensors(folder / "state.pt")


def assert_same_tensors(a: dict, b: dict):
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def forbid(monkeypatch, module, name="train"):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{module.__name__}.{name} must not run: the finished work should be reused")
    monkeypatch.setattr(module, name, refuse)


# --- settings_hash ------------------------------------------------------------------------------------------

def test_settings_hash_is_stable_and_sensitive_to_each_field():
    base = TrainSettings(model_kwargs=(("hidden", 32),), epochs=1)
    assert settings_hash(base) == settings_hash(TrainSettings(model_kwargs=(("hidden", 32),), epochs=1))
    assert len(settings_hash(base)) == 12 and int(settings_hash(base), 16) >= 0
    changes = {"task": "sst2", "model": "other", "model_kwargs": (("hidden", 64),), "epochs": 3, "batch_size": 32,
               "lr": 0.01, "seed": 1, "train_limit": 100, "eval_limit": 50}
    hashes = {settings_hash(dataclasses.replace(base, **{k: v})) for k, v in changes.items()}
    assert len(hashes) == len(changes) and settings_hash(base) not in hashes


def test_settings_hash_covers_only_non_default_fields():
    assert settings_hash(TrainSettings()) == settings_hash(TrainSettings(seed=0))
    assert settings_hash(TrainSettings()) == settings_hash(TrainSettings(train_limit=None, lr=0.001))
    assert settings_hash(TrainSettings()) != settings_hash(PruneSettings())   # the type is part of the name


def test_settings_hash_survives_a_new_optional_field():
    fields = [(f.name, f.type, dataclasses.field(default=f.default)) for f in dataclasses.fields(TrainSettings)]
    grown = dataclasses.make_dataclass("TrainSettings", fields + [("new_knob", int, dataclasses.field(default=7))],
                                       frozen=True)
    old = TrainSettings(epochs=1, seed=3)
    assert settings_hash(grown(epochs=1, seed=3)) == settings_hash(old)
    assert settings_hash(grown(epochs=1, seed=3, new_knob=8)) != settings_hash(old)


# --- baseline -----------------------------------------------------------------------------------------------

def test_trained_baseline_saves_init_weights_and_trains(tmp_path, train_settings, tiny_task):
    variant = trained_baseline(tmp_path, train_settings, tiny_task, quiet=True)
    folder = train_folder(tmp_path, train_settings)
    assert variant.folder == folder and is_finished(folder)
    assert folder.name == f"train-{settings_hash(train_settings)}"
    init, state = load_tensors(folder / "init.pt"), load_state(folder)
    assert list(init) == list(state)
    assert all(not torch.equal(init[k], state[k]) for k in state), "init.pt must hold the weights before training"
    config = json.loads((folder / "config.json").read_text())
    assert config["type"] == "TrainSettings" and config["seed"] == 0 and config["lr"] == 0.01
    assert variant.experiment == "baseline" and variant.iteration == 0
    assert variant.metrics["sparsity"] == 0.0
    assert variant.metrics["train"]["steps"] == 2 * 512 // 64
    assert variant.metrics["accuracy"] > 0.8        # the rule is linear: a trained FFN gets most of it right


def test_trained_baseline_reuses_a_finished_folder(tmp_path, train_settings, tiny_task, monkeypatch):
    first = trained_baseline(tmp_path, train_settings, tiny_task, quiet=True)
    state = load_state(first.folder)
    forbid(monkeypatch, baseline_mod)
    again = trained_baseline(tmp_path, train_settings, tiny_task, quiet=True)
    assert again.folder == first.folder and again.name == first.name
    assert again.metrics["accuracy"] == first.metrics["accuracy"]
    assert_same_tensors(load_state(again.folder), state)


def test_trained_baseline_is_reproducible_per_seed(tmp_path, train_settings, tiny_task):
    a = trained_baseline(tmp_path / "a", train_settings, tiny_task, quiet=True)
    b = trained_baseline(tmp_path / "b", train_settings, tiny_task, quiet=True)
    assert_same_tensors(load_state(a.folder), load_state(b.folder))
    assert_same_tensors(load_tensors(a.folder / "init.pt"), load_tensors(b.folder / "init.pt"))
    other = dataclasses.replace(train_settings, seed=1)
    c = trained_baseline(tmp_path / "a", other, tiny_task, quiet=True)
    assert c.folder != a.folder
    assert not torch.equal(load_state(c.folder)["out.weight"], load_state(a.folder)["out.weight"])


# --- variants -----------------------------------------------------------------------------------------------

def test_save_and_load_variant_round_trip(tmp_path, ffn, tiny_task):
    global_prune(ffn, 0.5)
    variant = Variant(name="toy-ffn-x", task="toy", experiment="x", method="l1", iteration=1, seed=0,
                      model={"name": "ffn", "kwargs": {"hidden": 32}}, extra={"amount_per_round": 0.5})
    saved = save_variant(variant, ffn, tiny_task, tmp_path / "v", train={"steps": 3})
    loaded = load_variant(tmp_path / "v")
    assert loaded.to_json() == saved.to_json() and loaded.folder == tmp_path / "v"
    m = loaded.metrics
    assert m["sparsity"] == pytest.approx(metrics.calculate_sparsity_pruned(ffn))
    assert m["params"] == metrics.count_parameters(ffn)[0] and m["nonzero_params"] < m["params"]
    assert m["state_dict_bytes_with_masks"] > m["state_dict_bytes"]
    assert m["train"] == {"steps": 3}
    assert m["accuracy"] == metrics.accuracy(ffn, tiny_task.eval_x, tiny_task.eval_y)
    state = load_state(tmp_path / "v")
    assert not any(k.endswith("_orig") or k.endswith("_mask") for k in state)
    x = torch.from_numpy(tiny_task.eval_x[:5])
    with torch.no_grad():
        want = ffn(x)
        masked = loaded.build(tiny_task, with_masks=True)
        assert torch.equal(masked(x), want)
        assert all(torch.equal(masks_of(masked)[k], v) for k, v in masks_of(ffn).items())
        assert torch.equal(loaded.build(tiny_task)(x), want)


def test_variant_json_is_written_last(tmp_path, ffn, tiny_task, monkeypatch):
    def broken(model, task):
        raise RuntimeError("metrics failed")
    monkeypatch.setattr(variant_mod, "describe", broken)
    variant = Variant(name="v", task="toy", experiment="x", method="l1", iteration=0, seed=0,
                      model={"name": "ffn", "kwargs": {"hidden": 32}})
    with pytest.raises(RuntimeError):
        save_variant(variant, ffn, tiny_task, tmp_path / "v")
    assert not is_finished(tmp_path / "v")


# --- repeated pruning ---------------------------------------------------------------------------------------

def nonzero_sets(variants) -> list[dict[str, torch.Tensor]]:
    out = []
    for v in variants:
        state = load_state(v.folder)
        out.append({k: t != 0 for k, t in state.items() if k.endswith("weight")})
    return out


def count_prune_calls(monkeypatch) -> list:
    calls = []
    real = METHODS["l1"]

    def counting(model, amount, ctx):
        calls.append(amount)
        return real(model, amount, ctx)
    monkeypatch.setitem(METHODS, "l1", counting)
    return calls


def test_repeated_pruning_compounds_without_retraining(tmp_path, train_settings, prune_settings, tiny_task):
    variants = repeated_pruning(tmp_path, train_settings, prune_settings, 3, tiny_task, quiet=True)
    assert [v.iteration for v in variants] == [0, 1, 2, 3]
    sparsities = [v.metrics["sparsity"] for v in variants]
    assert sparsities == pytest.approx([0.0, 0.33, 0.5511, 0.6993], abs=1e-3)
    assert all(v.experiment == "repeated" and v.method == "l1" for v in variants)
    assert len({v.name for v in variants}) == 4
    kept = nonzero_sets(variants)
    for prev, cur in zip(kept, kept[1:]):
        for name in cur:
            assert not torch.any(cur[name] & ~prev[name]), f"{name}: a pruned weight came back"
    # no retraining: every surviving weight keeps its baseline value
    base = load_state(train_folder(tmp_path, train_settings))
    last = load_state(variants[-1].folder)
    for name, keep in kept[-1].items():
        assert torch.equal(last[name][keep], base[name][keep])
    for name in ("layers.0.bias", "out.bias"):
        assert torch.equal(last[name], base[name])


def test_repeated_pruning_resumes_only_unfinished_iterations(tmp_path, train_settings, prune_settings, tiny_task,
                                                             monkeypatch):
    first = repeated_pruning(tmp_path, train_settings, prune_settings, 3, tiny_task, quiet=True)
    states = [load_state(v.folder) for v in first]
    for v in first[2:]:
        (v.folder / "variant.json").unlink()
    calls = count_prune_calls(monkeypatch)
    forbid(monkeypatch, baseline_mod)
    again = repeated_pruning(tmp_path, train_settings, prune_settings, 3, tiny_task, quiet=True)
    assert calls == [0.33, 0.33], "only it2 and it3 are pruned again"
    assert [v.folder for v in again] == [v.folder for v in first]
    assert all(is_finished(v.folder) for v in again)
    for state, v in zip(states, again):
        assert_same_tensors(load_state(v.folder), state)
    calls.clear()
    repeated_pruning(tmp_path, train_settings, prune_settings, 3, tiny_task, quiet=True)
    assert calls == []


def test_repeated_pruning_folder_depends_on_prune_settings(tmp_path, train_settings, prune_settings, tiny_task):
    a = repeated_pruning(tmp_path, train_settings, prune_settings, 1, tiny_task, quiet=True)
    other = dataclasses.replace(prune_settings, amount=0.5)
    b = repeated_pruning(tmp_path, train_settings, other, 1, tiny_task, quiet=True)
    assert a[1].folder != b[1].folder
    assert b[1].metrics["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert a[1].metrics["sparsity"] == pytest.approx(0.33, abs=1e-3)


# --- IMP with rewinding -------------------------------------------------------------------------------------

def test_rewind_restores_initial_weights_under_the_masks(tmp_path, train_settings, tiny_task):
    base = trained_baseline(tmp_path, train_settings, tiny_task, quiet=True)
    init = load_tensors(base.folder / "init.pt")
    model = base.build(tiny_task, with_masks=True)
    global_prune(model, 0.5)
    masks = masks_of(model)
    rewind(model, init)
    assert all(torch.equal(masks_of(model)[k], v) for k, v in masks.items())
    state = model.state_dict()
    for name in masks:
        assert torch.equal(state[name + "_orig"], init[name]), name
    plain = metrics.without_reparametrization(model).state_dict()
    for name, mask in masks.items():
        assert torch.equal(plain[name][mask], init[name][mask]), f"{name}: survivors restart from init"
        assert torch.all(plain[name][~mask] == 0), f"{name}: pruned weights stay zero"
    assert torch.equal(plain["layers.0.bias"], init["layers.0.bias"])


def test_rewind_rejects_initial_weights_of_another_model(ffn):
    global_prune(ffn, 0.5)
    with pytest.raises(KeyError, match="extra.weight"):
        rewind(ffn, {**ffn.state_dict(), "extra.weight": torch.zeros(1)})


def test_imp_retrains_from_rewound_weights_and_keeps_pruned_zeros(tmp_path, train_settings, prune_settings,
                                                                   tiny_task, monkeypatch):
    seen = []

    def recording_train(model, *args, **kwargs):
        seen.append((masks_of(model), metrics.without_reparametrization(model).state_dict()))
        return train(model, *args, **kwargs)
    monkeypatch.setattr(imp_mod, "train", recording_train)
    variants = imp_with_rewinding(tmp_path, train_settings, prune_settings, 2, tiny_task, quiet=True)
    assert [v.iteration for v in variants] == [0, 1, 2] and len(seen) == 2
    assert [v.metrics["sparsity"] for v in variants] == pytest.approx([0.0, 0.33, 0.5511], abs=1e-3)
    init = load_tensors(train_folder(tmp_path, train_settings) / "init.pt")
    for (masks, before_training), v in zip(seen, variants[1:]):
        after = load_state(v.folder)
        saved_masks = load_tensors(v.folder / "masks.pt")
        for name, mask in masks.items():
            assert torch.equal(before_training[name][mask], init[name][mask]), f"it{v.iteration} {name}: not rewound"
            assert torch.equal(saved_masks[name], mask)
            assert torch.all(after[name][~mask] == 0), f"it{v.iteration} {name}: pruned weight trained back"
            assert not torch.equal(after[name][mask], init[name][mask]), f"it{v.iteration} {name}: not retrained"
        assert v.metrics["train"]["steps"] == 2 * 512 // 64
    first, second = seen[0][0], seen[1][0]
    for name in first:
        assert not torch.any(second[name] & ~first[name])


def test_imp_resumes_after_an_interrupted_round(tmp_path, train_settings, prune_settings, tiny_task, monkeypatch):
    calls = []

    def interrupting_train(model, *args, **kwargs):
        calls.append(kwargs.get("label"))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return train(model, *args, **kwargs)
    monkeypatch.setattr(imp_mod, "train", interrupting_train)
    with pytest.raises(KeyboardInterrupt):
        imp_with_rewinding(tmp_path, train_settings, prune_settings, 2, tiny_task, quiet=True)
    folder = train_folder(tmp_path, train_settings) / f"imp-{settings_hash(prune_settings)}"
    assert is_finished(folder / "it0") and is_finished(folder / "it1")
    assert not is_finished(folder / "it2")
    it1_state = load_state(folder / "it1")

    calls.clear()
    monkeypatch.setattr(imp_mod, "train", lambda model, *a, **kw: calls.append(kw.get("label")) or train(model, *a, **kw))
    forbid(monkeypatch, baseline_mod)
    variants = imp_with_rewinding(tmp_path, train_settings, prune_settings, 2, tiny_task, quiet=True)
    assert len(calls) == 1 and "round 2" in calls[0], "only round 2 is trained again"
    assert [v.iteration for v in variants] == [0, 1, 2] and is_finished(folder / "it2")
    assert_same_tensors(load_state(folder / "it1"), it1_state)

    monkeypatch.undo()
    straight = imp_with_rewinding(tmp_path / "straight", train_settings, prune_settings, 2, tiny_task, quiet=True)
    assert_same_tensors(load_state(variants[2].folder), load_state(straight[2].folder))
