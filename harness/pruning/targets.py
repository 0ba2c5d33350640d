"""Which weights are prunable: Linear and Conv weights by default (the lab's choice), plus, when the user opts in,
the recurrent weight matrices of GRU/LSTM/RNN layers and embedding tables (harness.metrics.OPT_IN_TYPES).

The choice is a mark on the model (`edgeprune_prunable`), so it travels with every copy the pipeline makes (the
plugin's model factory deep-copies a marked model) and every number follows it: the methods prune those weights,
`sparsity` is a fraction of them, `sparsity_overall` stays a fraction of all parameters.
"""

from __future__ import annotations

from torch import nn

from harness.errors import EdgepruneError
from harness.metrics import OPT_IN_ATTRIBUTE, OPT_IN_TYPES

DEFAULT = ("linear", "conv")
KNOWN = DEFAULT + tuple(OPT_IN_TYPES)


def prunable_kinds(value) -> tuple[str, ...]:
    """The opt-in kinds of a user's `prunable` choice, validated: e.g. ("linear", "conv", "recurrent")."""
    kinds = (value,) if isinstance(value, str) else tuple(value or ())
    unknown = [k for k in kinds if k not in KNOWN]
    if unknown:
        raise EdgepruneError(f"prunable weights {unknown[0]!r} are not one of {', '.join(KNOWN)}.")
    missing = [k for k in DEFAULT if k not in kinds]
    if kinds and missing:
        raise EdgepruneError(f"prunable weights always include Linear and Conv weights; add {', '.join(missing)} "
                             f"to {list(kinds)} (the other kinds are added to them).")
    return tuple(k for k in OPT_IN_TYPES if k in kinds)


def opt_in(model: nn.Module, kinds) -> nn.Module:
    """Mark `model` so its recurrent and/or embedding weights count as prunable; returns it."""
    extra = prunable_kinds(kinds)
    if extra:
        setattr(model, OPT_IN_ATTRIBUTE, extra)
    return model
