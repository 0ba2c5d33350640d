"""Does an int8 file mean the same on every CPU? The quantization settings compared on the host and across ISAs.

For each fp32 model of a bundle that has int8 twins (``--models``, default the baseline), makes dynamic and static
int8 files with each candidate setting (``exporters.quantize.CANDIDATES``), then computes the eval set's logits with
onnxruntime on
- this host's CPU (here: AVX-512 VNNI and AMX),
- the same host Python under ``qemu-x86_64 -cpu Haswell`` (AVX2 without VNNI: onnxruntime's U8S8 kernels use
  vpmaddubsw there, whose 16-bit sums saturate; the case behind onnxruntime's reduce_range option),
- and, with ``--arm-root``, an aarch64 Python under qemu-aarch64 in the arm64 root of devices/emulated-arm64.sh, once
  per ``--arm-cpus`` model (cortex-a72: plain NEON like a Raspberry Pi 4; max: every feature qemu has, dot product
  and i8mm included).
It prints, per setting and file, the host accuracy and, per other CPU, the accuracy, the share of rows whose argmax
differs from the host's and whether the logits are bit-identical; the last line is, per CPU, the largest share of
rows whose argmax differs from the host's with the chosen setting (``exporters.quantize.INT8``), in percent.

    .venv/bin/python benchmarks/int8_isa_agreement.py --bundle build/bundle \
        [--arm-root build/device-roots/debian-bookworm-arm64] [--rows 2000]

The other CPUs are emulated, so only agreement is measured, never speed. ``--predict`` is the worker each CPU runs
(numpy and onnxruntime only, so it runs in the arm64 root's runner venv).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def predict(model: str, eval_npz: str, out: str, rows: int, batch: int) -> None:
    """The worker: logits of the first ``rows`` eval rows in the runner's eval batches."""
    import onnxruntime as ort

    with np.load(eval_npz) as npz:
        x = npz["inputs"][:rows]
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    logits = np.concatenate([sess.run(None, {name: np.ascontiguousarray(x[i:i + batch])})[0]
                             for i in range(0, len(x), batch)])
    np.save(out, logits)


def run_worker(prefix: list[str], python: str, script: str, model: str, eval_npz: str, out: str, rows: int,
               batch: int) -> None:
    cmd = [*prefix, python, script, "--predict", model, eval_npz, out, str(rows), str(batch)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed: {proc.stderr.strip().splitlines()[-1:]}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--predict":
        predict(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
        return
    sys.path.insert(0, str(REPO))
    from exporters.quantize import CANDIDATES, INT8, quantize_dynamic_int8, quantize_static_int8
    from runners.contract import EVAL_BATCH_SIZE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=REPO / "build" / "bundle")
    parser.add_argument("--models", default="*-baseline-s0", help="fnmatch glob over model names")
    parser.add_argument("--rows", type=int, default=2000, help="eval rows (emulation is slow)")
    parser.add_argument("--calibration", type=int, default=512,
                        help="calibration rows: the eval set's last rows, never scored")
    parser.add_argument("--arm-root", type=Path, default=None, help="arm64 root with the runner installed")
    parser.add_argument("--arm-cpus", default="cortex-a72,max")
    parser.add_argument("--x86-cpu", default="Haswell")
    args = parser.parse_args()

    import fnmatch

    manifest = json.loads((args.bundle / "manifest.json").read_text())
    models = [m for m in manifest["models"] if fnmatch.fnmatchcase(m["name"], args.models)
              and any(f["format"] == "onnx" for f in m["files"])]
    if not models:
        raise SystemExit(f"no model of {args.bundle} matches {args.models}")
    work = Path(tempfile.mkdtemp(prefix="int8-isa-"))
    try:
        if args.arm_root:   # the files must lie inside the root for its Python
            work_in_root = args.arm_root / "root" / "int8-isa"
            shutil.rmtree(work_in_root, ignore_errors=True)
            work_in_root.mkdir(parents=True)
            work = work_in_root
        shutil.copyfile(__file__, work / "predict.py")
        # Each CPU: (name, command prefix, python, the work folder as that python sees it).
        cpus = [(f"x86 {args.x86_cpu}", ["qemu-x86_64-static", "-cpu", args.x86_cpu], sys.executable, str(work))]
        if args.arm_root:
            for cpu in args.arm_cpus.split(","):
                cpus.append((f"arm {cpu}", ["env", f"QEMU_CPU={cpu}", f"ROOTFS={args.arm_root}", "bash",
                                            str(REPO / "devices" / "emulated-arm64.sh"), "--exec"],
                             "/root/edgeprune-bundle/.venv/bin/python", "/root/int8-isa"))
        worst: dict[str, float] = {}
        for model in models:
            fp32 = args.bundle / next(f["path"] for f in model["files"] if f["format"] == "onnx")
            shutil.copyfile(args.bundle / manifest["evals"][model["eval"]]["path"], work / "eval.npz")
            with np.load(work / "eval.npz") as npz:   # calibrated on the tail, scored on rows before it
                rows = min(args.rows, len(npz["labels"]) - args.calibration)
                labels = npz["labels"][:rows]
                calibration = npz["inputs"][-args.calibration:]
            print(f"{model['name']}: {rows} eval rows scored, {args.calibration} others for calibration; host "
                  f"accuracy fp32 (whole eval set) {model['accuracy']:.4f}")
            for label, setting in CANDIDATES.items():
                for kind in ("dynamic", "static"):
                    name = f"{label}-{kind}.onnx"
                    if kind == "dynamic":
                        quantize_dynamic_int8(fp32, work / name, setting)
                    else:
                        quantize_static_int8(fp32, work / name, calibration, setting)
                    run_worker([], sys.executable, str(work / "predict.py"), str(work / name), str(work / "eval.npz"),
                               str(work / "host.npy"), rows, EVAL_BATCH_SIZE)
                    host = np.load(work / "host.npy")
                    row = [f"  {label:<12} {kind:<7} host acc {np.mean(host.argmax(1) == labels):.4f}"]
                    for cpu_name, prefix, python, seen_as in cpus:
                        run_worker(prefix, python, f"{seen_as}/predict.py", f"{seen_as}/{name}",
                                   f"{seen_as}/eval.npz", f"{seen_as}/other.npy", rows, EVAL_BATCH_SIZE)
                        logits = np.load(work / "other.npy")
                        differ = float(np.mean(logits.argmax(1) != host.argmax(1)))
                        if setting == INT8:
                            worst[cpu_name] = max(differ, worst.get(cpu_name, 0.0))
                        same = "bit-identical" if np.array_equal(logits, host) else \
                            f"max |diff| {np.abs(logits - host).max():.3g}"
                        row.append(f"{cpu_name}: acc {np.mean(logits.argmax(1) == labels):.4f}, argmax differs "
                                   f"{100 * differ:.2f}%, {same}")
                    print(" | ".join(row), flush=True)
        print(f"chosen setting ({INT8}): largest share of rows whose argmax differs from the host's, per CPU: "
              + ", ".join(f"{cpu} {100 * share:.2f}%" for cpu, share in worst.items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
