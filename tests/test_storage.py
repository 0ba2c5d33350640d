"""harness.storage: every lossless compact file loads back into a model with identical outputs; sizes and the
entropy bound follow their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.errors import EdgepruneError
from harness.pruning import global_prune
from harness.representations import ENTROPY_BOUND, LOSSY
from harness.storage import (COMPACT_FORMATS, binary_entropy, compact_bytes, encode_compact, entropy_bound_bytes,
                             load_compact, narrowest_uint, save_compact, storage_sizes)

from conftest import make_ffn, make_task

LOSSLESS = ["csr", "bitmask", "bitmask_deflate"]


def test_every_compact_format_is_either_lossless_or_listed_lossy():
    """The report holds only lossless files against the entropy bound: a format missing from both lists, or a
    lossless one listed as lossy, would either be compared wrongly or lose its round-trip test below."""
    assert sorted(LOSSLESS + [f for f in LOSSY if f in COMPACT_FORMATS]) == sorted(COMPACT_FORMATS)
    assert not set(LOSSLESS) & set(LOSSY)


@pytest.fixture(scope="module")
def pruned():
    """FFN 16 -> 32 -> 32 -> 3, 80% of its weights pruned globally (masks still attached, as in the pipeline)."""
    model = make_ffn()
    global_prune(model, 0.8)
    return model


def outputs(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x))


@pytest.mark.parametrize("fmt", LOSSLESS)
def test_lossless_formats_round_trip_to_identical_outputs(pruned, fmt, tmp_path):
    path = tmp_path / f"model.{fmt}.npz"
    size = save_compact(pruned, path, fmt)
    assert size == path.stat().st_size
    fresh = make_ffn(seed=1)
    fresh.load_state_dict(load_compact(path))
    x = make_task().eval_x
    assert torch.equal(outputs(fresh, x), outputs(pruned, x))
    plain = {k: v for k, v in fresh.state_dict().items()}
    for name, tensor in pruned.state_dict().items():
        if name.endswith("_orig"):
            base = name.removesuffix("_orig")
            assert torch.equal(plain[base], tensor * pruned.state_dict()[base + "_mask"])


def test_lossy_formats_are_the_ones_that_change_values(pruned):
    """bitmask_int8 loads back close to, not equal to, the weights (torch_dynamic_int8 is a size, with no loader)."""
    fresh = make_ffn(seed=1)
    fresh.load_state_dict(load_compact(compact_bytes(pruned, "bitmask_int8")))
    x = make_task().eval_x
    assert not torch.equal(outputs(fresh, x), outputs(pruned, x))
    assert torch.allclose(outputs(fresh, x), outputs(pruned, x), atol=0.05)
    assert set(LOSSY) <= set(storage_sizes(pruned)) and ENTROPY_BOUND not in LOSSY


def test_csr_uses_the_narrowest_index_types():
    plain_state = {"w": torch.zeros(300, 1024)}
    plain_state["w"][::7, ::3] = 1.0
    arrays = encode_compact(plain_state, {"w"}, "csr")
    assert arrays["w::col"].dtype == np.uint16           # columns 0..1023
    assert arrays["w::row_ptr"].dtype == np.uint16       # 43 rows x 342 nonzeros = 14,706
    assert narrowest_uint(255) == np.uint8 and narrowest_uint(256) == np.uint16
    assert narrowest_uint(2**32) == np.uint64


def test_entropy_bound_by_hand():
    """One 4x8 weight with 8 nonzeros (density 1/4) and a 4-element bias."""
    model = torch.nn.Linear(8, 4)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[:, :2] = 1.0
    bits = 32 * 8 + 32 * binary_entropy(0.25) + 4 * 32
    assert entropy_bound_bytes(model) == math.ceil(bits / 8)
    assert binary_entropy(0.5) == 1.0 and binary_entropy(0.0) == 0.0


def test_sizes_order_at_80_percent(pruned):
    sizes = storage_sizes(pruned)
    assert sizes["bitmask"] < sizes["dense"] and sizes["csr"] < sizes["dense"]
    assert sizes["lab_coo"] > sizes["bitmask"]           # 20 bytes per nonzero against 4 + 1/8 per element


def test_a_damaged_compact_file_is_one_sentence(pruned, tmp_path):
    good = compact_bytes(pruned, "bitmask_deflate")
    for name, data in (("garbage", b"not a zip at all"), ("truncated", good[: len(good) // 2]),
                       ("flipped", good[:200] + bytes(b ^ 0xFF for b in good[200:400]) + good[400:])):
        path = tmp_path / f"{name}.npz"
        path.write_bytes(data)
        with pytest.raises(EdgepruneError, match="is not a compact edgeprune state"):
            load_compact(path)
