"""Names of representations that must be known without torch or onnxruntime (the report reads them).

harness.storage measures each storage representation; see its docstring for what each key holds.
"""

SAME_WEIGHTS_FORMATS = ("onnx", "onnx-sparse")   # ONNX files holding exactly the model's float32 weights

ENTROPY_BOUND = "entropy_bound"                   # a number, not a file
LOSSY = ("bitmask_int8", "torch_dynamic_int8")   # int8 values: not comparable with a 32-bit-per-value bound


def format_key(fmt: str) -> str:
    """Manifest key prefix of an ONNX file format's host checks: `onnx-int8-static` -> `onnx_int8_static`."""
    return "onnx_" + fmt.removeprefix("onnx-").replace("-", "_") if fmt != "onnx" else "onnx"
