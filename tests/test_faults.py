"""The fault catalogue: every hostile input or fault edgeprune is known to meet, one row each, and what must hold.

Each row names the fault, the item of issue 14 it comes from ("held" for faults edgeprune already met well), and its
expected outcome: the one sentence (words it contains), the exit code, what is still measured, and what is untouched.
Three tables, by the command that meets the fault:

* RUNNER_ROWS: ``runner bench`` on a synthetic bundle of two tiny MLPs (in-process, well under a second each);
* REPORT_ROWS: ``harness report`` on the synthetic results of tests/test_report.py;
* EXPORT_ROWS: ``harness export`` of a tiny user model (an 8-16-2 MLP, seconds per export) killed with SIGKILL at
  a named point, run twice at once, or given a full disk (a real one: a small tmpfs in a private mount namespace
  where this machine allows it, else simulated by making the writes fail as a full disk makes them fail).

What the runner opens and sends is checked in tests/test_offline.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(REPO), str(REPO / "tests")) if p not in sys.path]

from runner_fixtures import build_bundle, file_entry, refresh_file_entry, write_manifest  # noqa: E402
from runners.cli import main as runner_main  # noqa: E402

FAST = ["--min-runs", "3", "--min-seconds", "0", "--warmup", "0"]
ESC = "\x1b"


def manifest_of(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("Error:", "error:"))]


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Raise TimeoutError in the block after ``seconds`` (where SIGALRM exists); no time is measured or asserted."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def snapshot(paths: list[Path]) -> dict[Path, object]:
    """What "untouched" compares: bytes of a regular file, the file type of anything else, absent as None."""
    shot: dict[Path, object] = {}
    for p in paths:
        if not os.path.lexists(p):
            shot[p] = None
        elif p.is_file() and not p.is_symlink():
            shot[p] = p.read_bytes()
        else:
            shot[p] = stat.S_IFMT(os.lstat(p).st_mode)
    return shot


# ================================================================================================= runner bench
@dataclass(frozen=True)
class RunnerFault:
    name: str
    item: str                                    # the item of issue 14, or "held"
    apply: Callable[[Path, Path], Path | None]   # (bundle, tmp) -> --out (None: tmp/r.json); damages the bundle
    exit: int = 0
    says: str = ""                               # words of the one sentence (exit != 0) or of the error entries
    measured: dict[str, str] = field(default_factory=dict)   # model -> "ok" or words of its error entry
    untouched: tuple[str, ...] = ()              # bundle files (or "OUT") that must keep their bytes or file type
    options: tuple[str, ...] = ()


def _outside(tmp: Path) -> Path:
    secret = tmp / "outside"
    secret.mkdir(exist_ok=True)
    return secret


def link_model_outside(bundle: Path, tmp: Path) -> None:
    target = _outside(tmp) / "secret.onnx"
    shutil.move(bundle / "models/toy-0.onnx", target)
    (bundle / "models/toy-0.onnx").symlink_to(target)


def link_eval_outside(bundle: Path, tmp: Path) -> None:
    target = _outside(tmp) / "secret.npz"
    shutil.move(bundle / "eval/toy.npz", target)
    (bundle / "eval/toy.npz").symlink_to(target)


def link_models_folder_outside(bundle: Path, tmp: Path) -> None:
    target = _outside(tmp) / "models"
    shutil.move(bundle / "models", target)
    (bundle / "models").symlink_to(target, target_is_directory=True)


def link_model_to_passwd(bundle: Path, tmp: Path) -> None:
    """Issue 14 item 3: the result then recorded the size and sha256 prefix of any readable file."""
    (bundle / "models/toy-0.onnx").unlink()
    (bundle / "models/toy-0.onnx").symlink_to("/etc/passwd")


def set_eval(bundle: Path, inputs: np.ndarray | None = None, labels: np.ndarray | None = None) -> None:
    manifest = manifest_of(bundle)
    with np.load(bundle / "eval/toy.npz") as npz:
        x, y = npz["inputs"], npz["labels"]
    np.savez(bundle / "eval/toy.npz", inputs=x if inputs is None else inputs(x) if callable(inputs) else inputs,
             labels=y if labels is None else labels(y) if callable(labels) else labels)
    manifest["evals"]["toy"].update({k: v for k, v in file_entry(bundle, "eval/toy.npz").items() if k != "path"})
    write_manifest(bundle, manifest)


def edit_manifest(change: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    def apply(bundle: Path, tmp: Path) -> None:
        manifest = manifest_of(bundle)
        change(manifest)
        write_manifest(bundle, manifest)
    return apply


def replace_model(data: bytes | Callable[[bytes], bytes], refresh: bool = True) -> Callable[[Path, Path], None]:
    def apply(bundle: Path, tmp: Path) -> None:
        path = bundle / "models/toy-0.onnx"
        path.write_bytes(data(path.read_bytes()) if callable(data) else data)
        if refresh:                    # the manifest agrees with the file: the file itself is what is wrong
            refresh_file_entry(bundle, manifest_of(bundle), "models/toy-0.onnx")
    return apply


def foreign_onnx() -> bytes:
    """A valid ONNX file that is not one of edgeprune's: two inputs, which the runner cannot feed."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["logits"])], "foreign",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 8]) for n in "ab"],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def external_data_outside(bundle: Path, tmp: Path) -> None:
    """An ONNX file whose weights point at a file outside the bundle (external data, '../../')."""
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(bundle / "models/toy-0.onnx"))
    w = model.graph.initializer[0]
    (_outside(tmp) / "weights.bin").write_bytes(np.zeros(w.dims, np.float32).tobytes())
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../../outside/weights.bin"),):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    (bundle / "models/toy-0.onnx").write_bytes(model.SerializeToString())
    refresh_file_entry(bundle, manifest_of(bundle), "models/toy-0.onnx")


class Payload:
    """Unpickling it would create MARKER: proves no pickle is ever executed."""
    marker = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def pickled_eval(bundle: Path, tmp: Path) -> None:
    Payload.marker = str(tmp / "PWNED")
    np.savez(bundle / "eval/toy.npz", inputs=np.array([Payload()], dtype=object), labels=np.zeros(1, np.int64))
    manifest = manifest_of(bundle)
    manifest["evals"]["toy"].update({k: v for k, v in file_entry(bundle, "eval/toy.npz").items() if k != "path"})
    write_manifest(bundle, manifest)


def out_special(kind: str) -> Callable[[Path, Path], Path]:
    def apply(bundle: Path, tmp: Path) -> Path:
        out = tmp / f"out-{kind}"
        if kind == "fifo":
            os.mkfifo(out)
        elif kind == "device":
            try:      # a null device node of our own: never /dev/null itself, which the old runner replaced
                os.mknod(out, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
            except PermissionError:
                pytest.skip("creating a device node needs root")
        elif kind == "folder":
            out.mkdir()
        return out
    return apply


def out_in_bundle(rel: str) -> Callable[[Path, Path], Path]:
    return lambda bundle, tmp: bundle / rel


def out_links_to(rel: str) -> Callable[[Path, Path], Path]:
    def apply(bundle: Path, tmp: Path) -> Path:
        (tmp / "r.json").symlink_to(bundle / rel)
        return tmp / "r.json"
    return apply


def deep_manifest(bundle: Path, tmp: Path) -> None:
    text = json.dumps(manifest_of(bundle))
    (bundle / "manifest.json").write_text(text[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}")


def nothing(bundle: Path, tmp: Path) -> None:
    return None


BOTH_OK = {"toy-0": "ok", "toy-1": "ok"}
RUNNER_ROWS = [
    # item 1: --out names a file of the bundle being measured
    RunnerFault("out is the bundle's manifest", "1", out_in_bundle("manifest.json"), 2, "a file of the bundle",
                untouched=("manifest.json",)),
    RunnerFault("out is a model file", "1", out_in_bundle("models/toy-0.onnx"), 2, "a file of the bundle",
                untouched=("models/toy-0.onnx",)),
    RunnerFault("out is the runner zipapp", "1", out_in_bundle("runner"), 2, "a file of the bundle",
                untouched=("runner",)),
    RunnerFault("out links to the eval set", "1", out_links_to("eval/toy.npz"), 2, "a file of the bundle",
                untouched=("eval/toy.npz",)),
    # item 2: --out names a device node, a FIFO (as root, --out /dev/null destroyed /dev/null)
    RunnerFault("out is a device node", "2", out_special("device"), 2, "is a device node", untouched=("OUT",)),
    RunnerFault("out is a FIFO", "2", out_special("fifo"), 2, "is a FIFO", untouched=("OUT",)),
    RunnerFault("out is a folder", "held", out_special("folder"), 2, "is a folder", untouched=("OUT",)),
    # item 3: symbolic links out of the bundle
    RunnerFault("model is a link to a file outside", "3", link_model_outside, 0, "outside the bundle",
                {"toy-0": "through a symbolic link", "toy-1": "ok"}),
    RunnerFault("model is a link to /etc/passwd", "3", link_model_to_passwd, 0, "outside the bundle",
                {"toy-0": "through a symbolic link", "toy-1": "ok"}),
    RunnerFault("eval set is a link to a file outside", "3", link_eval_outside, 0, "outside the bundle",
                {"toy-0": "through a symbolic link", "toy-1": "through a symbolic link"}),
    RunnerFault("models/ is a link to a folder outside", "3", link_models_folder_outside, 0, "outside the bundle",
                {"toy-0": "through a symbolic link", "toy-1": "through a symbolic link"}),
    # item 5: --threads beyond what onnxruntime can create (it hung or crashed, printing nothing)
    RunnerFault("--threads 100000", "5", nothing, 2, "--threads 100000 is more than", options=("--threads", "100000")),
    # item 7: a timing loop that never ends
    RunnerFault("--min-seconds nan", "7", nothing, 2, "--min-seconds nan is not a finite number",
                options=("--min-seconds", "nan")),
    RunnerFault("--min-seconds inf", "7", nothing, 2, "--min-seconds inf is not a finite number",
                options=("--min-seconds", "inf")),
    RunnerFault("--min-runs 10**12", "7", nothing, 2, "--min-runs 1000000000000 is above its limit",
                options=("--min-runs", str(10**12))),
    # item 8: eval-set contents
    RunnerFault("labels beyond the model's classes", "8", lambda b, t: set_eval(b, labels=lambda y: y + 10), 0,
                "labels go up to", {"toy-0": "labels go up to", "toy-1": "labels go up to"}),
    RunnerFault("NaN inputs", "8", lambda b, t: set_eval(b, inputs=lambda x: np.where(x > 1, np.nan, x)), 0,
                "NaN or infinite", {"toy-0": "NaN or infinite", "toy-1": "NaN or infinite"}),
    RunnerFault("negative labels", "8", lambda b, t: set_eval(b, labels=lambda y: y - 5), 0, "negative label",
                {"toy-0": "negative label", "toy-1": "negative label"}),
    RunnerFault("text labels", "8", lambda b, t: set_eval(b, labels=lambda y: y.astype(str)), 0, "not whole numbers",
                {"toy-0": "not whole numbers", "toy-1": "not whole numbers"}),
    # item 9: deeply nested JSON (RecursionError)
    RunnerFault("manifest nested 100,000 deep", "9", deep_manifest, 2, "nests deeper than"),
    # item 10: escape sequences from the manifest reach the terminal
    RunnerFault("model name with escape sequences", "10",
                edit_manifest(lambda m: m["models"][0].update(name="toy-0\x1b[2J\x1b]0;pwned\x07")), 0, "",
                {"toy-0\x1b[2J\x1b]0;pwned\x07": "ok", "toy-1": "ok"}),
    # item 11: wrong-typed manifest fields surfaced as raw Python exception text
    RunnerFault("file size given as text", "11",
                edit_manifest(lambda m: m["models"][0]["files"][0].update(bytes="abc")), 2,
                "gives a file of model 'toy-0' a 'bytes' of \"abc\", not a whole number"),
    RunnerFault("model name given as a number", "held", edit_manifest(lambda m: m["models"][0].update(name=7)), 2,
                "each model needs at least a name"),
    RunnerFault("schema given as an object", "held", edit_manifest(lambda m: m.update(schema={"x": 1})), 2,
                "different edgeprune version"),
    # what already held
    RunnerFault("truncated ONNX file", "held", replace_model(lambda d: d[:100], refresh=False), 0, "",
                {"toy-0": "size mismatch", "toy-1": "ok"}),
    RunnerFault("empty ONNX file", "held", replace_model(b""), 0, "", {"toy-0": "could not load", "toy-1": "ok"}),
    RunnerFault("random bytes as ONNX", "held", replace_model(bytes(np.random.default_rng(0).integers(0, 256, 4096,
                                                                                                   np.uint8))),
                0, "", {"toy-0": "could not load", "toy-1": "ok"}),
    RunnerFault("foreign ONNX file (two inputs)", "held", replace_model(foreign_onnx()), 0, "",
                {"toy-0": "feeds exactly one", "toy-1": "ok"}),
    RunnerFault("ONNX weights outside the bundle", "held", external_data_outside, 0, "",
                {"toy-0": "could not load", "toy-1": "ok"}),
    RunnerFault("missing model file", "held", lambda b, t: (b / "models/toy-0.onnx").unlink(), 0, "",
                {"toy-0": "missing", "toy-1": "ok"}),
    RunnerFault("wrong sha256", "held", edit_manifest(lambda m: m["models"][1]["files"][0].update(sha256="0" * 64)),
                0, "", {"toy-0": "ok", "toy-1": "sha256 mismatch"}),
    RunnerFault("'..' in a path", "held", edit_manifest(lambda m: m["models"][0]["files"][0].update(
        path="../outside/x.onnx")), 0, "", {"toy-0": "outside the bundle", "toy-1": "ok"}),
    RunnerFault("absolute path", "held", edit_manifest(lambda m: m["models"][0]["files"][0].update(path="/etc/passwd")),
                0, "", {"toy-0": "outside the bundle", "toy-1": "ok"}),
    RunnerFault("pickle payload as eval set", "held", pickled_eval, 0, "",
                {"toy-0": "cannot be read", "toy-1": "cannot be read"}),
    RunnerFault("wrong schema", "held", edit_manifest(lambda m: m.update(schema="edgeprune.manifest/0")), 2,
                "edgeprune.manifest/0"),
]


@pytest.mark.parametrize("row", RUNNER_ROWS, ids=[f"{r.item}:{r.name}" for r in RUNNER_ROWS])
def test_runner_fault(row: RunnerFault, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    build_bundle(bundle, with_runner=True)
    out = row.apply(bundle, tmp_path) or tmp_path / "r.json"
    watched = [out if rel == "OUT" else bundle / rel for rel in row.untouched]
    before = snapshot(watched)
    with deadline(120):      # a row whose fault is a loop that never ends fails instead of hanging the suite
        res = CliRunner().invoke(runner_main, ["bench", str(bundle), "--out", str(out), *FAST, *row.options])

    assert res.exit_code == row.exit, res.output
    assert "Traceback" not in res.output and (res.exception is None or isinstance(res.exception, SystemExit))
    assert ESC not in res.stderr, "a terminal escape sequence from the bundle reached stderr"
    if row.exit:
        lines = error_lines(res.stderr)
        assert len(lines) == 1 and row.says in lines[0] and lines[0].rstrip().endswith("."), res.stderr
    else:
        result = json.loads(out.read_text())
        got = {m["name"]: m for m in result["models"]}
        assert set(got) == set(row.measured)
        for name, expected in row.measured.items():
            if expected == "ok":
                assert got[name]["status"] == "ok" and got[name]["accuracy"] is not None, got[name]
            else:
                assert got[name]["status"] == "error" and expected in got[name]["error"], got[name]
                assert "\n" not in got[name]["error"] and got[name]["accuracy"] is None
        linked = [m for m in got.values() if (m["error"] or "").startswith("path ") and "symbolic link" in m["error"]]
        assert all(m["disk_bytes"] is None and m["sha256_ok"] is None for m in linked), "a linked file was read"
    assert snapshot(watched) == before
    assert not (tmp_path / "PWNED").exists(), "a pickle in the bundle was executed"


def test_concurrent_benches_of_one_bundle_both_measure_everything(tmp_path: Path) -> None:
    """Row "held": two runners at once on one bundle, each with its own result."""
    bundle = tmp_path / "bundle"
    build_bundle(bundle)
    procs = [subprocess.Popen([sys.executable, "-m", "runners", "bench", str(bundle), "--out",
                               str(tmp_path / f"r{i}.json"), *FAST], cwd=REPO, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    for i in range(2):    # both files, and the A/A control's second entry of the reference, measured
        models = json.loads((tmp_path / f"r{i}.json").read_text())["models"]
        assert all(m["status"] == "ok" for m in models) and len({m["file"] for m in models}) == 2


# ================================================================================================= harness report
@dataclass(frozen=True)
class ReportFault:
    name: str
    item: str
    change: Callable[[dict, dict], None]    # (manifest, first result) -> None, in place
    exit: int
    says: str
    out_inside: bool = False                # --out is the folder that holds the results


def _dup_name(m: dict, r: dict) -> None:
    m["models"][2]["name"] = m["models"][1]["name"]


def _dup_file(m: dict, r: dict) -> None:
    m["models"][2]["files"] = [dict(f) for f in m["models"][1]["files"]]


DEEP = "[" * 5000 + "]" * 5000


def _deep_result(m: dict, r: dict) -> None:
    r["device"]["extra"] = "DEEP"      # written as 5,000 nested lists (json.dumps itself would refuse)


HOSTILE_NAME = "<script>alert(1)</script><img src=x onerror=alert(1)>![t](http://203.0.113.1/t.png)\x1b[2J"
REPORT_ROWS = [
    ReportFault("duplicate model names", "9", _dup_name, 2, "twice"),
    ReportFault("one file listed by two models", "9", _dup_file, 2, "twice"),
    ReportFault("result entry name is a list", "9", lambda m, r: r["models"][0].update(name=["x"]), 2,
                "'name' of [\"x\"], not text"),
    ReportFault("latency p50 is text", "9", lambda m, r: r["models"][0]["latency_ms"].update(p50="fast"), 2,
                "'p50' of \"fast\", not a number"),
    ReportFault("result nested 5,000 deep", "9", _deep_result, 2, "nests deeper than"),
    ReportFault("schema with escape sequences", "10", lambda m, r: r.update(schema="x\x1b]0;pwned\x07"), 2,
                "different edgeprune version"),
    ReportFault("HTML, remote image and escapes in a model name", "10",
                lambda m, r: [x.update(name=HOSTILE_NAME) for x in [m["models"][0]] + [e for e in r["models"]
                              if e["name"] == m["models"][0]["name"]]], 0, ""),
    ReportFault("--out holds the results it reads", "1", lambda m, r: None, 2, "which this command reads",
                out_inside=True),
]


@pytest.mark.parametrize("row", REPORT_ROWS, ids=[f"{r.item}:{r.name}" for r in REPORT_ROWS])
def test_report_fault(row: ReportFault, tmp_path: Path, capsys, monkeypatch) -> None:
    from harness.cli import main as harness_main
    from test_report import synthetic_manifest, synthetic_result

    manifest = synthetic_manifest()
    results = [synthetic_result(manifest, threads, {}) for threads in (1, 0)]
    row.change(manifest, results[0])
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle/manifest.json").write_text(json.dumps(manifest))
    folder = tmp_path / ("report" if row.out_inside else "results")
    folder.mkdir()
    paths = [folder / f"r{i}.json" for i in range(2)]
    for path, result in zip(paths, results):
        path.write_text(json.dumps(result).replace('"DEEP"', DEEP))
    if row.out_inside:
        (folder / ".edgeprune-report").write_text("an earlier report\n")
    out = folder if row.out_inside else tmp_path / "report"
    before = snapshot(paths + [tmp_path / "bundle/manifest.json"])
    monkeypatch.setattr(sys, "argv", ["harness", "report", *map(str, paths), "--bundle", str(tmp_path / "bundle"),
                                      "--out", str(out)])
    code = 0
    try:
        harness_main()
    except SystemExit as exc:
        code = exc.code or 0
    err = capsys.readouterr().err
    assert code == row.exit, err
    assert "Traceback" not in err and ESC not in err
    if row.exit:
        lines = error_lines(err)
        assert len(lines) == 1 and row.says in lines[0], err
        assert row.out_inside or not out.exists()
    else:
        md = (out / "report.md").read_text()
        for raw in ("<script", "<img", "](http", ESC):
            assert raw not in md, f"{raw!r} reached report.md"
        assert "&lt;script>" in md
        html = (out / "report.html").read_text()
        assert "<script" not in html and "<img src=x" not in html
    assert snapshot(paths + [tmp_path / "bundle/manifest.json"]) == before


# ================================================================================================= harness export
PLUGIN = textwrap.dedent('''
    import numpy as np
    import torch
    from torch import nn

    def build():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((300, 8)).astype(np.float32)
        y = (x[:, 0] + x[:, 1] > 0).astype(int)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
        return {"name": "tiny", "model": model, "train": (x[:200], y[:200]), "eval": (x[200:], y[200:])}
''')

# Runs `harness export` with faults planted by patching: {"kill": [{"at": "module:attr", "nth": N, "match": regex}]}
# sends SIGKILL to itself on the Nth call whose arguments match; "no_exchange" takes the swap's one-step exchange
# away; "disk_full" ("runs" or "bundle") makes writes fail as a full disk does, where no real one can be made.
DRIVER = textwrap.dedent('''
    import errno, importlib, json, os, re, shutil, signal, sys
    spec = json.loads(sys.argv[1])
    sys.argv = ["harness"] + sys.argv[2:]

    def patch(target, wrap):
        module, _, attr = target.partition(":")
        owner = importlib.import_module(module)
        *path, last = attr.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, last, wrap(getattr(owner, last)))

    def killer(nth, match, after):
        def wrap(orig):
            calls = [0]
            def wrapper(*args, **kwargs):
                hit = match is None or re.search(match, " ".join(map(str, args)))
                calls[0] += bool(hit)
                if hit and calls[0] >= nth and not after:
                    os.kill(os.getpid(), signal.SIGKILL)
                value = orig(*args, **kwargs)
                if hit and calls[0] >= nth:
                    os.kill(os.getpid(), signal.SIGKILL)
                return value
            return wrapper
        return wrap

    for kill in spec.get("kill", []):
        try:    # a point this version of edgeprune does not have is not planted
            patch(kill["at"], killer(kill.get("nth", 1), kill.get("match"), kill.get("after", False)))
        except (ImportError, AttributeError):
            pass
    if spec.get("no_exchange"):
        patch("harness.staging:exchange", lambda orig: (lambda a, b: False))
    if spec.get("disk_full") == "runs":      # torch's writer on a full disk: a RuntimeError, and no space left
        def full_save(orig):
            def save(obj, f, *a, **k):
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
            return save
        patch("torch:save", full_save)
        patch("shutil:disk_usage", lambda orig: (lambda p: shutil._ntuple_diskusage(1 << 20, 1 << 20, 0)))
    if spec.get("disk_full") == "bundle":    # shutil.copyfile on a full disk: source as filename, dest as filename2
        def full_copy(orig):
            def copyfile(src, dst, *a, **k):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src), None, str(dst))
            return copyfile
        patch("shutil:copyfile", full_copy)
    from harness.cli import main
    main()
''')


def _can_mount_tmpfs(tmp: Path) -> bool:
    if not shutil.which("unshare") or sys.platform != "linux":
        return False
    probe = tmp / "probe"
    probe.mkdir(exist_ok=True)
    return subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k none {probe}"],
                          capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("plugin") / "tiny_model.py"
    path.write_text(PLUGIN)
    return path


def export(plugin: Path, runs: Path, out: Path, spec: dict | None = None, small_disk: Path | None = None,
           wait: bool = True):
    """`harness export` of the tiny model (one round, quick profile) with the faults of ``spec``; ``small_disk``:
    a 64 KiB tmpfs mounted there for this process only."""
    args = ["export", "--profile", "quick", "--model", f"{plugin}:build", "--rounds", "1", "--runs-dir", str(runs),
            "--out", str(out), "--quiet"]
    cmd = [sys.executable, "-c", DRIVER, json.dumps(spec or {}), *args]
    if small_disk is not None:
        small_disk.mkdir(parents=True, exist_ok=True)
        cmd = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=64k none "$0" && exec "$@"', str(small_disk), *cmd]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc.communicate(timeout=600) + (proc.returncode,) if wait else proc


def bundle_ok(out: Path) -> str:
    """The bundle_id of a complete bundle at ``out`` whose every file matches its manifest (else AssertionError)."""
    from runners.bundle import check_file, load_manifest

    manifest = load_manifest(out)
    for entry in [f for m in manifest["models"] for f in m["files"]] + list(manifest["evals"].values()):
        check_file(out, entry)
    return manifest["bundle_id"]


def leftovers(folder: Path) -> list[str]:
    """Hidden entries beside a bundle (staging folders, locks) and temporary files in it or in a runs folder."""
    hidden = sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.is_dir() else []
    return hidden + sorted(p.name for p in folder.rglob("*.tmp") if "runs" not in p.relative_to(folder).parts[:1])


@pytest.fixture(scope="module")
def reference(plugin, tmp_path_factory) -> tuple[Path, Path, str]:
    """One uninterrupted export: (runs, bundle, bundle_id), for resumed exports to match byte for byte."""
    root = tmp_path_factory.mktemp("reference")
    _, err, code = export(plugin, root / "runs", root / "bundle")
    assert code == 0, err
    return root / "runs", root / "bundle", bundle_ok(root / "bundle")


@dataclass(frozen=True)
class ExportFault:
    name: str
    item: str
    spec: dict
    runs: str = "fresh"     # "fresh": an empty runs folder; "trained": a copy of the reference's; "no-onnx": that,
                            # without its ONNX files
    bundle: str = "none"    # "none": --out does not exist; "old": --out holds the reference bundle


KILL_ROWS = [
    ExportFault("kill -9 during training", "held", {"kill": [{"at": "torch.optim:Adam.step", "nth": 2}]}),
    ExportFault("kill -9 between pruning rounds", "held",
                {"kill": [{"at": "torch:save", "match": r"repeated-.*it1.*state"}]}),
    ExportFault("kill -9 during ONNX export", "held", {"kill": [{"at": "exporters.bundle:export_onnx", "nth": 2}]},
                runs="no-onnx"),
    ExportFault("kill -9 while the bundle is written", "6", {"kill": [{"at": "exporters.bundle:_file_entry", "nth": 3}]},
                runs="trained", bundle="old"),
    ExportFault("kill -9 as the bundle is swapped in", "6",
                {"kill": [{"at": "os:rename", "match": "OUT$"},                 # edgeprune before issue 14
                          {"at": "harness.staging:exchange", "after": True}]},   # the one-step exchange
                runs="trained", bundle="old"),
    ExportFault("kill -9 between two renames (no one-step exchange)", "6",
                {"no_exchange": True, "kill": [{"at": "os:rename", "match": "OUT$"}]}, runs="trained", bundle="old"),
]


@pytest.mark.parametrize("row", KILL_ROWS, ids=[f"{r.item}:{r.name}" for r in KILL_ROWS])
def test_export_killed(row: ExportFault, plugin, reference, tmp_path: Path) -> None:
    """After the kill --out holds a whole bundle or none (never half of one), finished runs are kept, and the next
    export leaves no staging folder or temporary file behind and writes the same bundle as an uninterrupted one."""
    ref_runs, ref_bundle, ref_id = reference
    runs, out = tmp_path / "runs", tmp_path / "bundle"
    if row.runs != "fresh":
        shutil.copytree(ref_runs, runs)
        if row.runs == "no-onnx":
            for path in [*runs.rglob("*.onnx"), *runs.rglob("onnx-check.json")]:
                path.unlink()
    if row.bundle == "old":
        shutil.copytree(ref_bundle, out)
    spec = json.loads(json.dumps(row.spec).replace("OUT$", str(out).replace("\\", "\\\\") + "$"))
    _, err, code = export(plugin, runs, out, spec)
    assert code == -9, f"the planted kill did not happen: {err}"
    if row.bundle == "old" and not row.spec.get("no_exchange"):
        assert bundle_ok(out) == ref_id          # the old bundle, whole, at every moment
    _, err, code = export(plugin, runs, out)
    assert code == 0, err
    assert bundle_ok(out) == ref_id
    assert leftovers(tmp_path) == []
    assert len(leftovers(runs)) <= 1, "more than the one temporary file a kill inside a write can leave"


def test_concurrent_exports_share_runs_and_out(plugin, reference, tmp_path: Path) -> None:
    """Row "held": two exports at once on one runs folder and one --out both succeed, one after the other at the
    swap; the bundle is the reference's and nothing is left behind."""
    _, _, ref_id = reference
    runs, out = tmp_path / "runs", tmp_path / "bundle"
    procs = [export(plugin, runs, out, wait=False) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    assert bundle_ok(out) == ref_id and leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["runs", "bundle"])
def test_full_disk_is_named_as_such(where, plugin, reference, tmp_path: Path) -> None:
    """Items 4 and 11: a full disk under runs/ (torch.save's RuntimeError) or under --out (copyfile names the source
    as its file) is one sentence that says the disk is full and names the file being written, exit 2; no bundle."""
    ref_runs, _, _ = reference
    disk = tmp_path / "disk"
    runs, out = (disk / "runs", tmp_path / "bundle") if where == "runs" else (tmp_path / "runs", disk / "bundle")
    if where == "bundle":
        shutil.copytree(ref_runs, runs)
    real = _can_mount_tmpfs(tmp_path)
    _, err, code = export(plugin, runs, out, None if real else {"disk_full": where}, small_disk=disk if real else None)
    assert code == 2 and "Traceback" not in err, err
    lines = error_lines(err)
    assert len(lines) == 1 and "the disk is full" in lines[0], err
    if where == "runs":
        assert f"while writing {runs}" in lines[0]
    else:       # the bundle being written, never the run file it was copied from
        assert str(out) in lines[0] and str(runs) not in lines[0]
    assert not out.exists()
