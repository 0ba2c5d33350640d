"""Your own model and data: `harness export --model pkg.module:build` or `--model path/to/file.py:build`.

The function (called with no arguments, or with `data_dir=` when it takes that parameter) returns a dict or a
dataclass such as `UserModel` with: `model` (an nn.Module), `train` and `eval` ((x, y) numpy arrays), `name`,
and optionally `num_classes`, `example` (one input batch) and `description`. `user_plan` turns that into a plan
(harness.plans.TaskPlan: baseline, repeated unstructured pruning, structured removal of 25% and 50% of the
channels or hidden units) whose task brings the data and the model (`TaskData.model_factory`); the export runs it
beside the built-in plans. Nothing is registered: the plan is a value passed down. The initial weights are the
ones the function returned (every seed starts from them; seeds change the batch order).

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
from harness.plans import PLANS, TaskPlan

USER_PREFIX = "user-"   # a user's model is named user-<module>-<function>

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")   # names become file names in the bundle
USER_EXPERIMENTS = ("baseline", "repeated", "structured")
USER_STRUCTURED_RATIOS = (0.25, 0.5)                     # fraction of channels (or hidden units) removed


@dataclass
class UserModel:
    """What a user's build function returns (a dict with these keys works as well)."""
    model: nn.Module
    train: tuple[np.ndarray, np.ndarray]
    eval: tuple[np.ndarray, np.ndarray]
    name: str
    num_classes: int | None = None        # default: 1 + the largest label
    example: np.ndarray | None = None     # default: the first eval row
    description: str = ""


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
    if user.num_classes is None:
        user.num_classes = int(max(user.train[1].max(), user.eval[1].max())) + 1
    return user


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
    _check_forward(user, spec)
    source = Path(inspect.getfile(module)).read_bytes()
    (train_x, train_y), (eval_x, eval_y) = user.train, user.eval
    task = TaskData(name=user.name, train_x=train_x, train_y=train_y, eval_x=eval_x, eval_y=eval_y,
                    num_classes=user.num_classes,
                    description=user.description or f"{user.name}: user data from {spec}",
                    extra={"plugin": spec}, model_factory=lambda: copy.deepcopy(user.model))
    return LoadedPlugin(spec, fingerprint(source, user), model_name(spec), user, task)


def user_plan(spec: str, amount: float = 0.33, rounds: int | None = None,
              data_dir: Path | None = None) -> TaskPlan:
    """The plan for the user's model and data, named by the user's `name`; its task brings the model."""
    if not 0 < amount < 1:
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

    # Conv models lose channels (with their BatchNorm), others hidden units of Linear layers.
    has_conv = any(isinstance(m, nn.modules.conv._ConvNd) for m in loaded.user.model.modules())
    structured = tuple(StructuredSettings(kind="channels" if has_conv else "neurons", importance="l1", ratio=r)
                       for r in USER_STRUCTURED_RATIOS)
    return TaskPlan(name, name, loaded.model_name,
                    model_kwargs=(("fingerprint", loaded.fingerprint), ("spec", spec)),
                    experiments=USER_EXPERIMENTS, amount=amount, rounds=rounds, structured=structured, load=load)
