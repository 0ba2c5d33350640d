"""How much does the runner's measurement loop add to what it measures?

Times the same ONNX model, in the same process, with the same threads and batch, three ways:
  * runner:         ``runners.bench.run_bench`` -- the function ``runner bench`` calls -- and its reported p50
                    (calls made with ``--api``, default iobinding);
  * bare (same api): a hand-written onnxruntime loop making the same kind of call, ``time.perf_counter`` around it;
  * bare sess.run:  the loop every notebook writes, ``sess.run(None, feed)``.
Rounds alternate their order so all share the machine's noise and drift. Prints the median over rounds of each
p50, the runner against the ``sess.run`` loop, and, on the last line, ``ratio runner/bare p50: X.XX`` against the
loop with the same api (1.00 = the runner's loop adds nothing to what it measures).

    .venv/bin/python benchmarks/runner_overhead.py                  # builds an MLP 400-1024-1024-10 bundle
    .venv/bin/python benchmarks/runner_overhead.py --bundle build/bundle --model NAME --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for p in (REPO, REPO / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from runners.bench import run_bench, selected_files  # noqa: E402
from runners.bundle import EvalSets, load_manifest  # noqa: E402
from runners.session import ORT_DTYPES, first_rows  # noqa: E402
from runners.settings import CALL_APIS, BenchSettings  # noqa: E402


def bare_p50(path: Path, input_name: str, batch: np.ndarray, threads: int, warmup: int, runs: int,
             api: str) -> float:
    """p50 (ms) of a hand-written onnxruntime loop (no runner code): the reference the runner is compared against."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads > 0:
        so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    inp = next((i for i in sess.get_inputs() if i.name == input_name), sess.get_inputs()[0])
    x = np.ascontiguousarray(batch, dtype=ORT_DTYPES[inp.type])
    if api == "run":
        feed = {inp.name: x}

        def call() -> None:
            sess.run(None, feed)
    else:
        binding = sess.io_binding()
        binding.bind_cpu_input(inp.name, x)
        for out in sess.get_outputs():
            binding.bind_output(out.name, "cpu")

        def call() -> None:
            sess.run_with_iobinding(binding)
    for _ in range(warmup + 1):
        call()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return float(np.percentile(np.asarray(times) * 1e3, 50))


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, help="existing bundle (default: build a synthetic MLP bundle)")
    ap.add_argument("--model", help="model name in the bundle (default: the first)")
    ap.add_argument("--layers", default="400,1024,1024,10", help="MLP widths for the synthetic bundle")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--runs", type=int, default=2000, help="timed runs per round (both sides)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--api", choices=CALL_APIS, default="iobinding", help="how the runner makes each call")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="runner-overhead.") as tmp:
        bundle = args.bundle
        if bundle is None:
            from runner_fixtures import build_bundle

            bundle = Path(tmp) / "bundle"
            layers = tuple(int(x) for x in args.layers.split(","))
            build_bundle(bundle, layers=layers, n_models=1, n_eval=256, flip=0, margin=0.0)
        manifest = load_manifest(bundle)
        pairs = [(m, f) for m, f in selected_files(manifest) if f is not None
                 and (args.model is None or m["name"] == args.model)]
        if not pairs:
            sys.exit(f"no ONNX file for model {args.model!r} in {bundle}")
        model, file_entry = pairs[0]
        path = bundle / file_entry["path"]
        inputs, _ = EvalSets(bundle, manifest.get("evals") or {}).get(model.get("eval", model.get("task")))
        batch = first_rows(inputs, args.batch_size)  # the same rows the runner times
        input_name = model.get("input_name") or "input"
        settings = BenchSettings(threads=args.threads, batch_size=args.batch_size, warmup=args.warmup,
                                 min_runs=args.runs, min_seconds=0.0, models=model["name"], api=args.api,
                                 rounds=1, aa_control=False)   # one window, as the bare loop times
        print(f"model {model['name']} ({file_entry['path']}, {path.stat().st_size} bytes), threads {args.threads}, "
              f"batch {args.batch_size}, runner api {args.api}, {args.rounds} rounds x {args.runs} runs")

        runner_p50s: list[float] = []
        bare_p50s: list[float] = []
        plain_p50s: list[float] = []

        def runner_round() -> None:
            result = run_bench(bundle, settings, progress=lambda _line: None, manifest=manifest)
            entry = next(m for m in result["models"] if m["file"] == file_entry["path"])
            if entry["status"] != "ok":
                sys.exit(f"runner failed: {entry['error']}")
            runner_p50s.append(entry["latency_ms"]["p50"])

        def bare_round() -> None:
            bare_p50s.append(bare_p50(path, input_name, batch, args.threads, args.warmup, args.runs, args.api))

        def plain_round() -> None:
            plain_p50s.append(bare_p50(path, input_name, batch, args.threads, args.warmup, args.runs, "run"))

        for r in range(args.rounds):
            order = [runner_round, bare_round, plain_round]
            for fn in order[r % 3:] + order[:r % 3]:
                fn()
            print(f"round {r + 1}: runner p50 {runner_p50s[-1]:.4f} ms, bare ({args.api}) p50 {bare_p50s[-1]:.4f} ms, "
                  f"bare sess.run p50 {plain_p50s[-1]:.4f} ms")

    runner_med = statistics.median(runner_p50s)
    bare_med = statistics.median(bare_p50s)
    plain_med = statistics.median(plain_p50s)
    ratio = runner_med / bare_med
    print(f"runner            p50 (median of rounds): {runner_med:.4f} ms")
    print(f"bare ({args.api:9s}) p50 (median of rounds): {bare_med:.4f} ms")
    print(f"bare sess.run     p50 (median of rounds): {plain_med:.4f} ms")
    print(f"ratio runner/bare sess.run p50: {runner_med / plain_med:.3f}")
    print(f"ratio runner/bare p50: {ratio:.3f}")
    return ratio


if __name__ == "__main__":
    main()
