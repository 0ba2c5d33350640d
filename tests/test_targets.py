"""harness.pruning.targets: recurrent and embedding weights become prunable only when the user opts in, and then
every method and every sparsity number covers them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from harness import metrics
from harness.errors import EdgepruneError
from harness.pruning import METHODS, PruneContext, get_method
from harness.pruning.targets import opt_in, prunable_kinds


class GRUText(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.gru, self.fc = nn.Embedding(60, 8), nn.GRU(8, 16, num_layers=2, batch_first=True), \
            nn.Linear(16, 2)

    def forward(self, tokens):
        _, h = self.gru(self.emb(tokens))
        return self.fc(h[-1])


def make_gru(kinds=()):
    torch.manual_seed(0)
    return opt_in(GRUText(), kinds)


RECURRENT = ("linear", "conv", "recurrent")
TOKENS = np.random.default_rng(0).integers(1, 60, (64, 9)).astype(np.int64)
LABELS = np.random.default_rng(1).integers(0, 2, 64)


def test_default_targets_are_linear_and_conv_weights_only():
    assert metrics.prunable_names(make_gru()) == ["fc.weight"]
    assert metrics.prunable_names(make_gru(RECURRENT)) == [
        "gru.weight_ih_l0", "gru.weight_hh_l0", "gru.weight_ih_l1", "gru.weight_hh_l1", "fc.weight"]
    assert metrics.prunable_names(make_gru(RECURRENT + ("embedding",)))[0] == "emb.weight"


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_reaches_the_asked_sparsity_over_opted_in_recurrent_weights(method):
    model = make_gru(RECURRENT)
    get_method(method)(model, 0.6, PruneContext(calibration=TOKENS, calibration_labels=LABELS))
    names = metrics.prunable_names(model)
    per = metrics.calculate_sparsity_per_parameter(model)
    recurrent = [n for n in names if n.startswith("gru.")]
    asked = 0.5 if method == "2:4" else 0.6                  # 2:4 is a fixed pattern
    # wanda rounds per row: rows of 8 and 16 inputs lose round(0.6 * 8) = 5 and 10 weights, 62.5%
    assert metrics.calculate_sparsity_pruned(model) == pytest.approx(asked, abs=0.03 if method == "wanda" else 0.005)
    assert sum(per[n] for n in recurrent) > 0 and per["emb.weight"] == 0          # embeddings were not opted in
    assert metrics.calculate_sparsity_overall(model) < metrics.calculate_sparsity_pruned(model)
    assert model(torch.from_numpy(TOKENS[:3])).shape == (3, 2)


def test_the_mark_survives_the_copies_the_pipeline_makes():
    import copy

    model = make_gru(RECURRENT)
    assert metrics.prunable_names(copy.deepcopy(model)) == metrics.prunable_names(model)
    assert metrics.prunable_names(metrics.without_reparametrization(model)) == metrics.prunable_names(model)


@pytest.mark.parametrize("kinds, words", [(("linear", "conv", "lstm"), "not one of"), (("recurrent",), "always")])
def test_a_bad_choice_is_one_sentence(kinds, words):
    with pytest.raises(EdgepruneError, match=words):
        prunable_kinds(kinds)
