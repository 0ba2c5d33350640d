"""int8 ONNX files of a variant with onnxruntime.quantization: dynamic (weights int8, activations quantized on
the fly) and static QDQ (weights and activations int8, activation ranges calibrated on training inputs).

Order (docs/methods.md): prune -> fine-tune -> quantize. Quantization runs last, on the dense fp32 ONNX file of
the final pruned weights, so its scales are fitted to the weights that will ship; zeros stay exactly zero under
symmetric int8 weights, so the sparsity survives.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_dynamic, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

from harness.io import atomic_path
from runners.contract import (EVAL_BATCH_SIZE, INT8_FORMATS, ONNX_INT8_DYNAMIC, ONNX_INT8_STATIC, experiment_kind,
                               format_key, run_file_name)

CALIBRATION_ROWS = 512


@dataclass(frozen=True)
class Int8Settings:
    """The quantizer's choices that decide what an int8 file computes (docs/methods.md, "int8 on every device").

    reduce_range: weights in [-64, 64] (the U8S8 path's products then fit the 16-bit sums of AVX2's vpmaddubsw without
    saturating, so a CPU without VNNI computes what a VNNI or ARM CPU computes)."""

    reduce_range: bool = False
    per_channel_static: bool = True
    per_channel_dynamic: bool = False

    def to_json(self) -> dict:
        return asdict(self)


# Compared by benchmarks/int8_isa_agreement.py; INT8 is the one the bundle's files are made with. Chosen from that
# comparison (docs/methods.md): with 7-bit weights an AVX2 CPU without VNNI and emulated ARM cores computed logits
# bit-identical to this VNNI host, for a change of host accuracy within +-0.1 point; with 8-bit weights they did not.
CANDIDATES = {"full-range": Int8Settings(reduce_range=False), "reduce-range": Int8Settings(reduce_range=True)}
INT8 = CANDIDATES["reduce-range"]


class ArrayReader(CalibrationDataReader):
    """Feeds calibration rows (training inputs, never the eval split) to the static quantizer in batches."""

    def __init__(self, input_name: str, inputs: np.ndarray, batch: int = 64):
        self._batches = iter([{input_name: np.ascontiguousarray(inputs[i : i + batch])}
                              for i in range(0, len(inputs), batch)])

    def get_next(self):
        return next(self._batches, None)


@contextlib.contextmanager
def _quiet():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _preprocessed(src: Path, tmp: Path) -> Path:
    """quant_pre_process (shape inference + graph optimisation), which the quantizer's docs ask for."""
    out = tmp / "pre.onnx"
    with _quiet():
        quant_pre_process(str(src), str(out), skip_symbolic_shape=False)
    return out


def quantize_dynamic_int8(src: Path, dst: Path, settings: Int8Settings = INT8) -> None:
    with tempfile.TemporaryDirectory() as tmp, atomic_path(Path(dst)) as out, _quiet():
        quantize_dynamic(str(_preprocessed(Path(src), Path(tmp))), str(out), weight_type=QuantType.QInt8,
                         per_channel=settings.per_channel_dynamic, reduce_range=settings.reduce_range)
    onnx.checker.check_model(str(dst), full_check=True)


def quantize_static_int8(src: Path, dst: Path, calibration: np.ndarray, settings: Int8Settings = INT8) -> None:
    """QDQ static int8: activations uint8 (asymmetric), weights int8 symmetric per output channel (the
    U8S8 combination onnxruntime recommends for x86 CPUs), 7-bit with reduce_range; per-channel keeps small rows of
    pruned layers exact."""
    input_name = onnx.load(str(src), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp, atomic_path(Path(dst)) as out, _quiet():
        quantize_static(str(_preprocessed(Path(src), Path(tmp))), str(out),
                        ArrayReader(input_name, calibration[:CALIBRATION_ROWS]), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        per_channel=settings.per_channel_static, reduce_range=settings.reduce_range,
                        calibrate_method=CalibrationMethod.MinMax)
    onnx.checker.check_model(str(dst), full_check=True)


def int8_selection(variants) -> set[str]:
    """Names of the variants that get int8 files, as their experiment kind says (runners.contract): every variant
    of an "all" kind (baselines, structured), and of a "sparsest" kind (IMP) the round with the highest sparsity
    of each (task, seed, method)."""
    chosen = {v.name for v in variants if experiment_kind(v.experiment).int8 == "all"}
    sparsest: dict[tuple, object] = {}
    for v in variants:
        if experiment_kind(v.experiment).int8 == "sparsest":
            key = (v.task, v.seed, v.experiment, v.method)
            if key not in sparsest or v.metrics.get("sparsity", 0) > sparsest[key].metrics.get("sparsity", 0):
                sparsest[key] = v
    return chosen | {v.name for v in sparsest.values()}


def _predictions(path: Path, inputs: np.ndarray, batch: int = EVAL_BATCH_SIZE) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: inputs[i : i + batch]})[0].argmax(1)
                           for i in range(0, len(inputs), batch)])


def export_int8(onnx_path: Path, calibration: np.ndarray, eval_x: np.ndarray,
                eval_y: np.ndarray) -> tuple[list[tuple[Path, str]], dict]:
    """Dynamic and static int8 twins of a dense ONNX file, cached beside it with their checks on the eval set: the
    fraction of rows whose argmax agrees with the fp32 file (`onnx_int8_*_agreement`) and the int8 file's own
    accuracy on the host (`onnx_int8_*_accuracy`), which a device's accuracy for that file is compared with; both
    in the runner's eval batches (`onnx_int8_eval_batch`), since dynamic int8 results depend on the batching."""
    from harness.experiments.store import read_json
    from harness.io import write_json

    folder = Path(onnx_path).parent
    files = [(folder / run_file_name(fmt), fmt) for fmt in (ONNX_INT8_DYNAMIC, ONNX_INT8_STATIC)]
    check_path = folder / "int8-check.json"
    wanted = [f"{format_key(fmt)}_{what}" for _, fmt in files for what in ("agreement", "accuracy")]
    cached = read_json(check_path) if check_path.exists() else {}
    # Files made with other quantization settings are made again; checks from other batching are recomputed.
    if not (all(p.exists() for p, _ in files) and cached.get("onnx_int8_settings") == INT8.to_json()):
        quantize_dynamic_int8(onnx_path, files[0][0], INT8)
        quantize_static_int8(onnx_path, files[1][0], calibration, INT8)
    elif set(wanted) <= set(cached) and cached.get("onnx_int8_eval_batch") == EVAL_BATCH_SIZE:
        return files, cached
    reference = _predictions(onnx_path, eval_x)
    checks = {"onnx_int8_eval_batch": EVAL_BATCH_SIZE, "onnx_int8_settings": INT8.to_json()}
    for path, fmt in files:
        predicted = _predictions(path, eval_x)
        checks[f"{format_key(fmt)}_agreement"] = float((predicted == reference).mean())
        checks[f"{format_key(fmt)}_accuracy"] = float((predicted == eval_y).mean())
    write_json(check_path, checks)
    return files, checks
