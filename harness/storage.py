"""On-disk size of a model's weights in each representation, each measured by serialising for real.

Representations (keys of the manifest's `storage`):
- `dense`: the state_dict saved normally with torch.save (masks folded in, so no *_orig / *_mask copies);
- `lab_coo`: the lab's method: reparametrization removed on a copy, every tensor `.to_sparse()`, torch.save;
- `csr`: prunable weights as CSR with the narrowest unsigned index types that fit, other tensors dense;
- `bitmask`: prunable weights as a packed 1-bit-per-element nonzero mask plus the nonzero float32 values;
- `bitmask_deflate`: the same arrays in a deflate-compressed zip (the mask compresses towards its entropy);
- `bitmask_int8`: the bitmask with the nonzero values as int8 and one float32 scale per row (symmetric,
  max |w| of the row -> 127): lossy, about 4x smaller values; `load_compact` dequantizes;
- `torch_dynamic_int8`: torch.save of the state_dict of torch.ao.quantization.quantize_dynamic (Linear -> int8);
- `entropy_bound`: not a file but the information-theoretic size of the same weights: nonzero values at 32 bits,
  plus numel x binary entropy of the density for each prunable tensor, plus the unpruned tensors at 32 bits.
`csr`, `bitmask`, `bitmask_deflate` and `bitmask_int8` are .npz files that `load_compact` turns back into a state_dict.
"""

from __future__ import annotations

import io
import math
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.errors import EdgepruneError
from harness.io import write_bytes
from harness.metrics import prunable_names, saved_size, without_reparametrization
from harness.representations import ENTROPY_BOUND

COMPACT_FORMATS = ("csr", "bitmask", "bitmask_deflate", "bitmask_int8")
SEP = "::"


def narrowest_uint(max_value: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def _as_matrix(t: np.ndarray) -> np.ndarray:
    return t.reshape(t.shape[0], -1) if t.ndim > 1 else t.reshape(1, -1)


def encode_compact(state: dict[str, torch.Tensor], prunable: set[str], fmt: str) -> dict[str, np.ndarray]:
    """Arrays of one compact representation; prunable float tensors are sparse-coded, others kept dense."""
    if fmt not in COMPACT_FORMATS:
        raise EdgepruneError(f"unknown compact format {fmt!r}; use one of {', '.join(COMPACT_FORMATS)}.")
    arrays: dict[str, np.ndarray] = {}
    for name, tensor in state.items():
        a = tensor.detach().cpu().numpy()
        if name not in prunable or a.dtype != np.float32:
            arrays[f"{name}{SEP}dense"] = a
            continue
        arrays[f"{name}{SEP}shape"] = np.asarray(a.shape, dtype=np.int64)
        if fmt == "csr":
            m = _as_matrix(a)
            rows, cols = np.nonzero(m)
            counts = np.bincount(rows, minlength=m.shape[0])
            row_ptr = np.concatenate([[0], np.cumsum(counts)])
            arrays[f"{name}{SEP}row_ptr"] = row_ptr.astype(narrowest_uint(int(row_ptr[-1])))
            arrays[f"{name}{SEP}col"] = cols.astype(narrowest_uint(max(m.shape[1] - 1, 0)))
            arrays[f"{name}{SEP}values"] = m[rows, cols]
        elif fmt == "bitmask_int8":
            m = _as_matrix(a)
            scale = (np.abs(m).max(axis=1) / 127).astype(np.float32)
            scale[scale == 0] = 1
            nonzero = m != 0             # the pruning mask; a weight that rounds to int8 0 is kept as a stored 0
            arrays[f"{name}{SEP}bits"] = np.packbits(nonzero.ravel())
            arrays[f"{name}{SEP}values"] = np.clip(np.round(m / scale[:, None]), -127, 127).astype(np.int8)[nonzero]
            arrays[f"{name}{SEP}scale"] = scale
        else:
            flat = a.ravel()
            nonzero = flat != 0
            arrays[f"{name}{SEP}bits"] = np.packbits(nonzero)
            arrays[f"{name}{SEP}values"] = flat[nonzero]
    return arrays


def decode_compact(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    names = dict.fromkeys(k.split(SEP)[0] for k in arrays)
    state = {}
    for name in names:
        if f"{name}{SEP}dense" in arrays:
            state[name] = torch.from_numpy(np.array(arrays[f"{name}{SEP}dense"]))
            continue
        shape = tuple(int(s) for s in arrays[f"{name}{SEP}shape"])
        values = arrays[f"{name}{SEP}values"]
        if f"{name}{SEP}bits" in arrays:
            n = math.prod(shape)
            mask = np.unpackbits(arrays[f"{name}{SEP}bits"], count=n).astype(bool)
            flat = np.zeros(n, dtype=values.dtype)
            flat[mask] = values
            if f"{name}{SEP}scale" in arrays:        # bitmask_int8: dequantize with each value's row scale
                scale = arrays[f"{name}{SEP}scale"]
                per_row = mask.reshape(len(scale), -1).sum(axis=1)
                flat = np.zeros(n, dtype=np.float32)
                flat[mask] = values.astype(np.float32) * np.repeat(scale, per_row)
            dense = flat.reshape(shape)
        else:
            row_ptr = arrays[f"{name}{SEP}row_ptr"].astype(np.int64)
            n_rows = len(row_ptr) - 1
            m = np.zeros((n_rows, math.prod(shape) // max(n_rows, 1)), dtype=values.dtype)
            rows = np.repeat(np.arange(n_rows), np.diff(row_ptr))
            m[rows, arrays[f"{name}{SEP}col"].astype(np.int64)] = values
            dense = m.reshape(shape)
        state[name] = torch.from_numpy(dense)
    return state


def compact_bytes(model: nn.Module, fmt: str) -> bytes:
    """The .npz file of `model`'s weights in a compact format (masks folded in on a copy)."""
    plain = without_reparametrization(model)
    arrays = encode_compact(plain.state_dict(), set(prunable_names(plain)), fmt)
    buffer = io.BytesIO()
    (np.savez_compressed if fmt.endswith("_deflate") else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def save_compact(model: nn.Module, path: Path, fmt: str) -> int:
    data = compact_bytes(model, fmt)
    write_bytes(Path(path), data)
    return len(data)


def load_compact(path_or_bytes) -> dict[str, torch.Tensor]:
    """A state_dict from a compact .npz (path or bytes), ready for model.load_state_dict."""
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) else path_or_bytes
    try:
        with np.load(source, allow_pickle=False) as npz:
            return decode_compact({k: npz[k] for k in npz.files})
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise EdgepruneError(f"{path_or_bytes if not isinstance(path_or_bytes, bytes) else 'data'} "
                             f"is not a compact edgeprune state ({exc}).") from exc


def binary_entropy(p: float) -> float:
    if p <= 0 or p >= 1:
        return 0.0
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def entropy_bound_bytes(model: nn.Module) -> int:
    """Information-theoretic size: 32 bits per nonzero value + numel * H(density) per prunable tensor + the rest."""
    plain = without_reparametrization(model)
    prunable = set(prunable_names(plain))
    bits = 0.0
    for name, t in plain.state_dict().items():
        if name in prunable:
            nnz = int((t != 0).sum())
            bits += 32 * nnz + t.numel() * binary_entropy(nnz / t.numel())
        else:
            bits += t.numel() * t.element_size() * 8
    return math.ceil(bits / 8)


def lab_coo_state_dict(model: nn.Module) -> dict:
    """The lab's sparse save: reparametrization removed on a copy, every tensor `.to_sparse()` (COO)."""
    plain = without_reparametrization(model)
    return {k: v.to_sparse() for k, v in plain.state_dict().items()}


def torch_dynamic_int8_bytes(model: nn.Module) -> int:
    """Saved size of the state_dict after PyTorch dynamic int8 quantization of the Linear layers (packed
    int8 weights with per-tensor scales; the zeros are stored, so this is dense int8 size)."""
    plain = without_reparametrization(model).eval()
    with warnings.catch_warnings():      # torch deprecates quantized tensors in favour of torchao (not a dep)
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(plain, {nn.Linear}, dtype=torch.qint8)
    return saved_size(quantized.state_dict())


def storage_sizes(model: nn.Module) -> dict[str, int]:
    """Bytes per representation of the same weights."""
    plain = without_reparametrization(model)
    sizes = {"dense": saved_size(plain.state_dict()), "lab_coo": saved_size(lab_coo_state_dict(model))}
    sizes.update({fmt: len(compact_bytes(model, fmt)) for fmt in COMPACT_FORMATS})
    sizes["torch_dynamic_int8"] = torch_dynamic_int8_bytes(model)
    sizes[ENTROPY_BOUND] = entropy_bound_bytes(model)
    return sizes
