"""Your own model and data: `harness export --model pkg.module:build` or `--model path/to/file.py:build`.

The function (called with no arguments, or with `data_dir=` when it takes that parameter) returns a dict or a
dataclass such as `UserModel` with: `model` (an nn.Module), `train` and `eval` ((x, y) numpy arrays), `name`,
and optionally `num_classes`, `example` (an input batch), `description`, `training` (epochs, batch_size, lr,
optimizer, schedule, loss), `plan` (experiments, amount, rounds, imp and repeated methods, structured_ratios, structured
settings) and `prunable` (opt-in recurrent/embedding weights). `user_plan` turns that into a plan
(harness.plans.TaskPlan) that gets what a built-in task gets unless the plugin narrows it: baseline, repeated
pruning, IMP with rewinding for every registered method, structured removal of 25/50/75% of the channels or hidden
units through the dependency graph, sensitivity, and int8 twins; its task brings the data and the model
(`TaskData.model_factory`), and the export runs it beside the built-in plans. Nothing is registered: the plan is a
value passed down. The initial weights are the ones the function returned (every seed starts from them; seeds
change the batch order).

Run folders stay rebuildable: the spec and a fingerprint are model kwargs, so they name the run, and
`load_plugin(spec)` in a new process gives the task that rebuilds the model from the run folder. The fingerprint
hashes the module's source, the model's structure and the data arrays, so an edited module, a resized model or new
data train anew (a change hidden inside an imported forward() does not show; data drawn without a fixed seed is
new data on every call).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harness.data.registry import TASKS, TaskData, subset
from harness.errors import EdgepruneError
from harness.experiments.structured import StructuredSettings
from harness.plans import PLANS, Schedule, TaskPlan
from harness.pruning import METHODS
from harness.pruning.targets import opt_in, prunable_kinds
from harness.training import OPTIMIZERS, SCHEDULES

USER_PREFIX = "user-"   # a user's model is named user-<module>-<function>

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")   # names become file names in the bundle
# What a user's model gets unless its plugin's `plan` says otherwise: the whole plan a built-in task gets.
USER_EXPERIMENTS = ("baseline", "repeated", "imp", "structured", "sensitivity")
USER_STRUCTURED_RATIOS = (0.25, 0.5, 0.75)               # fraction of channels (or hidden units) removed
TRAINING_KEYS = ("epochs", "batch_size", "lr", "optimizer", "schedule", "loss")
PLAN_KEYS = ("experiments", "amount", "rounds", "imp", "repeated", "structured_ratios", "structured")


def every_method() -> tuple[Schedule, ...]:
    """IMP with every registered method, capped like the MNIST plan: each round retrains, so the extra methods get
    3 rounds and 2:4 one (its mask is fixed)."""
    caps = {"l1": None, "2:4": 1}
    return tuple(Schedule(m, caps.get(m, 3)) for m in METHODS)


@dataclass
class UserModel:
    """What a user's build function returns (a dict with these keys works as well)."""
    model: nn.Module
    train: tuple[np.ndarray, np.ndarray]
    eval: tuple[np.ndarray, np.ndarray]
    name: str
    num_classes: int | None = None        # default: 1 + the largest label
    example: np.ndarray | None = None     # default: the first eval rows
    description: str = ""
    # Optional choices, each with the built-in plans' default when absent:
    training: dict | None = None          # epochs, batch_size, lr, optimizer ("adam", "adamw", "sgd"),
    #                                       schedule ("constant", "cosine"), loss (a function)
    plan: dict | None = None              # experiments, amount, rounds, imp / repeated (method names),
    #                                       structured_ratios, structured (StructuredSettings fields)
    prunable: tuple | None = None         # e.g. ("linear", "conv", "recurrent", "embedding"): opt-in weights


@dataclass
class LoadedPlugin:
    spec: str
    fingerprint: str
    model_name: str
    user: UserModel
    task: TaskData


def parse_spec(spec: str) -> tuple[str, str]:
    target, sep, func = spec.rpartition(":")
    if not sep or not target or not func.isidentifier():
        raise EdgepruneError(f"--model {spec!r} is not of the form package.module:function or path/file.py:function.")
    return target, func


def _import(target: str, spec: str):
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = Path(target).expanduser()
        if not path.is_file():
            raise EdgepruneError(f"--model {spec!r}: the file {path} does not exist.")
        mod_name = "edgeprune_user_" + re.sub(r"\W", "_", path.stem)
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module           # dataclasses and pickling look modules up by name
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:                 # noqa: BLE001 - the user's module fails while importing
            sys.modules.pop(mod_name, None)
            raise EdgepruneError(f"--model {spec!r}: importing {path} raised {_where(exc)}.") from exc
        return module
    if os.getcwd() not in sys.path:              # a console script does not put the working folder on the path
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        raise EdgepruneError(f"--model {spec!r}: cannot import module {target!r} ({exc}).") from exc
    except Exception as exc:                     # noqa: BLE001 - the user's module fails while importing
        raise EdgepruneError(f"--model {spec!r}: importing module {target!r} raised {_where(exc)}.") from exc


def _where(exc: BaseException) -> str:
    """`Type: message (at file:line)`, naming the deepest frame (the user's code) in one line."""
    text = " ".join(str(exc).split()) or "no message"
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{type(exc).__name__}: {exc.msg} (at {exc.filename}:{exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{type(exc).__name__}: {text}" + (f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else "")


def model_name(spec: str) -> str:
    target, func = parse_spec(spec)
    stem = Path(target).stem if target.endswith(".py") else target
    return f"{USER_PREFIX}{re.sub(r'[^A-Za-z0-9_.]', '_', stem)}-{func}"


def _fields(result, spec: str) -> dict:
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    if isinstance(result, dict):
        return dict(result)
    raise EdgepruneError(f"--model {spec!r} returned {type(result).__name__}; expected a dict or dataclass with "
                         f"model, train, eval and name.")


def _pair(value, key: str, spec: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        x, y = value
        x, y = np.ascontiguousarray(np.asarray(x)), np.asarray(y)
    except (TypeError, ValueError) as exc:
        raise EdgepruneError(f"--model {spec!r}: `{key}` must be a pair (x, y) of numpy arrays ({exc}).") from exc
    if x.dtype == np.float64:
        x = x.astype(np.float32)                 # torch models are float32
    if len(x) != len(y) or len(x) == 0 or y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise EdgepruneError(f"--model {spec!r}: `{key}` needs as many integer labels (1-D) as inputs, "
                             f"got {len(x)} inputs and labels of shape {y.shape} ({y.dtype}).")
    return x, y.astype(np.int64)


def _to_user_model(result, spec: str) -> UserModel:
    data = _fields(result, spec)
    missing = [k for k in ("model", "train", "eval", "name") if k not in data]
    if missing:
        raise EdgepruneError(f"--model {spec!r} returned no {', '.join(missing)}; expected model, train, eval, name.")
    if not isinstance(data["model"], nn.Module):
        raise EdgepruneError(f"--model {spec!r}: `model` is a {type(data['model']).__name__}, not a torch nn.Module.")
    if not isinstance(data["name"], str) or not NAME_RE.match(data["name"]):
        raise EdgepruneError(f"--model {spec!r}: `name` {data['name']!r} must be letters, digits, '_', '.' or '-'.")
    known = {f.name for f in dataclasses.fields(UserModel)}
    user = UserModel(**{k: v for k, v in data.items() if k in known})
    user.train, user.eval = _pair(user.train, "train", spec), _pair(user.eval, "eval", spec)
    if user.example is not None:
        user.example = np.ascontiguousarray(user.example)
        if user.example.dtype == np.float64:
            user.example = user.example.astype(np.float32)
    if user.num_classes is None:
        user.num_classes = int(max(user.train[1].max(), user.eval[1].max())) + 1
    return user


def _check_choices(user: UserModel, spec: str) -> None:
    for key, value, known in (("training", user.training, TRAINING_KEYS), ("plan", user.plan, PLAN_KEYS)):
        if value is None:
            continue
        if not isinstance(value, dict):
            raise EdgepruneError(f"--model {spec!r}: `{key}` must be a dict with some of {', '.join(known)}.")
        unknown = [k for k in value if k not in known]
        if unknown:
            raise EdgepruneError(f"--model {spec!r}: `{key}` has {unknown[0]!r}; known: {', '.join(known)}.")
    training = user.training or {}
    if training.get("optimizer", "adam") not in OPTIMIZERS:
        raise EdgepruneError(f"--model {spec!r}: optimizer {training['optimizer']!r} is not one of "
                             f"{', '.join(OPTIMIZERS)}.")
    if training.get("schedule", "constant") not in SCHEDULES:
        raise EdgepruneError(f"--model {spec!r}: schedule {training['schedule']!r} is not one of "
                             f"{', '.join(SCHEDULES)}.")
    if "loss" in training and not callable(training["loss"]):
        raise EdgepruneError(f"--model {spec!r}: `loss` must be a function loss(logits, labels) -> scalar tensor.")
    plan = user.plan or {}
    for key in ("imp", "repeated"):
        unknown = [m for m in plan.get(key, ()) if m not in METHODS]
        if unknown:
            raise EdgepruneError(f"--model {spec!r}: {key} method {unknown[0]!r} is not one of "
                                 f"{', '.join(METHODS)}.")
    unknown = [e for e in plan.get("experiments", ()) if e not in USER_EXPERIMENTS]
    if unknown:
        raise EdgepruneError(f"--model {spec!r}: experiment {unknown[0]!r} is not one of "
                             f"{', '.join(USER_EXPERIMENTS)}.")
    opt_in(user.model, user.prunable)
    user.prunable = prunable_kinds(user.prunable)       # the opted-in kinds; () when the user chose the default


def _check_forward(user: UserModel, spec: str) -> None:
    example = user.eval[0][:2] if user.example is None else np.asarray(user.example)
    try:
        with torch.inference_mode():
            out = copy.deepcopy(user.model).eval()(torch.from_numpy(np.ascontiguousarray(example)))
    except Exception as exc:   # noqa: BLE001 - any failure here is the user's model rejecting its own inputs
        raise EdgepruneError(f"--model {spec!r}: the model fails on its eval inputs of shape "
                             f"{list(example.shape)} ({type(exc).__name__}: {exc}).") from exc
    if out.ndim != 2 or out.shape[1] != user.num_classes:
        raise EdgepruneError(f"--model {spec!r}: the model returns shape {list(out.shape)}, expected logits "
                             f"[batch, {user.num_classes}].")


def fingerprint(source: bytes, user: UserModel) -> str:
    """What decides the plugin's results besides edgeprune's settings: its source, its model's structure (layers,
    tensor names, shapes and types) and its data. Not the initial weights' values: a build() that does not seed
    its initialization would otherwise never reuse a run; the run folder keeps the weights it started from."""
    digest = hashlib.sha256(source)
    digest.update(repr(user.model).encode())
    for name, tensor in user.model.state_dict().items():
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
    for array in (*user.train, *user.eval):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:12]


def load_plugin(spec: str, data_dir: Path | None = None) -> LoadedPlugin:
    """Import the module, call the function, validate what it returned."""
    target, func_name = parse_spec(spec)
    module = _import(target, spec)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise EdgepruneError(f"--model {spec!r}: module {target!r} has no function {func_name!r}.")
    kwargs = {"data_dir": data_dir} if "data_dir" in inspect.signature(func).parameters else {}
    try:
        result = func(**kwargs)
    except Exception as exc:                     # noqa: BLE001 - the user's function fails (or wants arguments)
        raise EdgepruneError(f"--model {spec!r}: calling {func_name}() raised {_where(exc)}.") from exc
    user = _to_user_model(result, spec)
    _check_choices(user, spec)
    _check_forward(user, spec)
    source = Path(inspect.getfile(module)).read_bytes()
    (train_x, train_y), (eval_x, eval_y) = user.train, user.eval
    task = TaskData(name=user.name, train_x=train_x, train_y=train_y, eval_x=eval_x, eval_y=eval_y,
                    num_classes=user.num_classes,
                    description=user.description or f"{user.name}: user data from {spec}",
                    extra={"plugin": spec, **({"loss_fn": user.training["loss"]}
                                              if "loss" in (user.training or {}) else {}),
                           # the batch the ONNX export traces (exporters.bundle), when the user gives one
                           **({"example": user.example} if user.example is not None else {})},
                    model_factory=lambda: copy.deepcopy(user.model))
    return LoadedPlugin(spec, fingerprint(source, user), model_name(spec), user, task)


def user_plan(spec: str, amount: float | None = None, rounds: int | None = None,
              data_dir: Path | None = None) -> TaskPlan:
    """The plan for the user's model and data, named by the user's `name`; its task brings the model. `amount` and
    `rounds` (--amount, --rounds) win over the plugin's plan."""
    if amount is not None and not 0 < amount < 1:
        raise EdgepruneError(f"--amount {amount} must be a fraction between 0 and 1 (exclusive).")
    if rounds is not None and rounds < 0:
        raise EdgepruneError(f"--rounds {rounds} must be 0 or more.")
    loaded = load_plugin(spec, data_dir)
    name = loaded.task.name
    if name in PLANS or name in TASKS:
        raise EdgepruneError(f"--model {spec!r}: the name {name!r} is already a task; return another name.")

    def load(_data_dir, train_limit, eval_limit) -> TaskData:
        t = loaded.task
        train_x, train_y = subset(t.train_x, t.train_y, train_limit, seed=0)
        eval_x, eval_y = subset(t.eval_x, t.eval_y, eval_limit, seed=1)
        return dataclasses.replace(t, train_x=train_x, train_y=train_y, eval_x=eval_x, eval_y=eval_y)

    user, plan, training = loaded.user, loaded.user.plan or {}, loaded.user.training or {}
    # Conv models lose channels (with their BatchNorm) and Linear hidden units, others hidden units; residual
    # stages are pruned as the dependency graph couples them.
    has_conv = any(isinstance(m, nn.modules.conv._ConvNd) for m in user.model.modules())
    options = {"kind": "channels" if has_conv else "neurons", "importance": "l1", "coupled": True,
               **plan.get("structured", {})}
    try:
        structured = tuple(StructuredSettings(**{**options, "ratio": r})
                           for r in plan.get("structured_ratios", USER_STRUCTURED_RATIOS))
    except TypeError as exc:
        raise EdgepruneError(f"--model {spec!r}: `structured` holds a field StructuredSettings does not have "
                             f"({exc}).") from exc
    imp = tuple(s for s in every_method() if s.method in plan.get("imp", METHODS))
    repeated = tuple(Schedule(m) for m in plan.get("repeated", ("l1",)))
    loss = training.get("loss")
    kwargs = (("fingerprint", loaded.fingerprint), ("spec", spec)) + (
        (("prunable", ",".join(user.prunable)),) if user.prunable else ())
    return TaskPlan(name, name, loaded.model_name, model_kwargs=kwargs,
                    experiments=tuple(plan.get("experiments", USER_EXPERIMENTS)),
                    amount=amount if amount is not None else plan.get("amount", 0.33),
                    rounds=rounds if rounds is not None else plan.get("rounds"), repeated=repeated, imp=imp,
                    structured=structured, load=load, epochs=training.get("epochs"),
                    batch_size=training.get("batch_size"), lr=training.get("lr"),
                    optimizer=training.get("optimizer", "adam"), schedule=training.get("schedule", "constant"),
                    loss=getattr(loss, "__qualname__", "loss") if loss is not None else "")


# ------------------------------------------------------------------------------------------ helpers for examples
def mnist_images(data_dir=None, train_limit: int | None = None, eval_limit: int | None = None) -> dict:
    """MNIST through edgeprune's loader (EDGEPRUNE_DATA / --data-dir, else the user cache) as 1x20x20 images:
    the `train`, `eval`, `num_classes` and `description` of a user module's result (fixed subsets when limited)."""
    from harness.data import load_task, resolve_data_dir

    mnist = load_task("mnist", data_dir or resolve_data_dir(None), train_limit, eval_limit)
    sample = f" (a fixed sample of {len(mnist.eval_y)})" if eval_limit else ""
    return {"train": (mnist.train_x.reshape(-1, 1, 20, 20), mnist.train_y),
            "eval": (mnist.eval_x.reshape(-1, 1, 20, 20), mnist.eval_y), "num_classes": 10,
            "description": f"MNIST test split{sample}, 20x20 centre crop as 1x20x20 images, pixels in [0, 1]"}


def synthetic_images(n_train: int = 512, n_eval: int = 128) -> dict:
    """Four textures plus noise on 1x20x20 images (flat, horizontal stripes, vertical stripes, checkerboard), as
    `train`, `eval`, `num_classes`, `description`: no data files needed."""
    rng = np.random.default_rng(0)
    rows, cols = np.indices((20, 20))
    templates = np.stack([np.full((20, 20), 0.5), rows % 2, cols % 2, (rows + cols) % 2]).astype(np.float32)

    def sample(n: int):
        y = rng.integers(0, len(templates), n)
        x = templates[y][:, None] + 0.3 * rng.standard_normal((n, 1, 20, 20))
        return x.astype(np.float32), y.astype(np.int64)

    return {"train": sample(n_train), "eval": sample(n_eval), "num_classes": len(templates),
            "description": "synthetic 1x20x20 textures (flat, stripes, checkerboard) plus gaussian noise"}
