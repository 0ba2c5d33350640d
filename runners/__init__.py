"""edgeprune device-side runner.

Measures the ONNX models of an edgeprune bundle on the device it runs on and writes an
``edgeprune.result/1`` JSON file (see docs/formats.md). Depends only on onnxruntime, numpy,
psutil and click -- never on torch, harness or exporters -- because it is what gets copied to the device.
"""

__version__ = "0.4.0"

from runners.contract import MANIFEST_SCHEMA, RESULT_SCHEMA

__all__ = ["__version__", "MANIFEST_SCHEMA", "RESULT_SCHEMA"]
