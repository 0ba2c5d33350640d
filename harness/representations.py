"""Names of representations that must be known without torch or onnxruntime (the report reads them).

harness.storage measures each storage representation; see its docstring for what each key holds.
"""

ENTROPY_BOUND = "entropy_bound"                   # a number, not a file
LOSSY = ("bitmask_int8", "torch_dynamic_int8")   # int8 values: not comparable with a 32-bit-per-value bound

