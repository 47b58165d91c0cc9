"""The older MLE-Star template's own sections: ``experiment``, ``hyperparameter_tuning``, ``environment``.

``experiment`` names the project and seeds it; ``hyperparameter_tuning``
becomes the stage 6 search (``refinement``): its search space is written as
``learning_rate: [0.0001, 0.01]`` (a range), ``batch_size: [16, 32, 64]``
(choices) or Optuna-style ``{type: float, low, high, log}``; ``environment``
sets the device, threads, memory limit and determinism.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from mlestar.config.legacy.common import Handler, Translation, as_mapping, norm, number, to, walk, warn_with
from mlestar.config.legacy.training import optimizer_name, translate_cuda_available, translate_device
from mlestar.config.schema import TUNABLE, ParamSpec, RefinementConfig, check_param

_SAMPLERS = {"optuna": "tpe", "tpe": "tpe", "bayesian": "tpe", "randomsearch": "random", "random": "random",
             "cmaes": "cmaes", "cmaes_sampler": "cmaes"}
# A float range spanning this many times its low end is searched on a log scale, as learning rates are.
LOG_SCALE_RATIO = 100.0
_NAMES = {"lr": "learning_rate", "wd": "weight_decay", "optimizer_type": "optimizer"}


def translate_experiment(tr: Translation, value: Any, path: str) -> None:
    """``experiment: {name, description, seed}`` -> ``project.name``, ``project.description``, ``seed``."""
    walk(tr, value, path, {"name": to("project.name", str), "description": to("project.description", str),
                           "seed": to("seed"), "random_seed": to("seed")},
         warn_with({}, "descriptive only; kept out of the config"))


def translate_environment(tr: Translation, value: Any, path: str) -> None:
    """``environment``: device, cores, memory and determinism map; the Python version is descriptive."""
    walk(tr, value, path, _ENVIRONMENT_HANDLERS,
         warn_with({"python_version": "descriptive only; mlestar runs on the Python that runs it"},
                   "not an environment setting mlestar has; ignored"))


def _memory_gb(tr: Translation, value: Any, path: str) -> None:
    tr.put("constraints.max_peak_memory", f"{value}GB", path)


def _seeding(tr: Translation, value: Any, path: str) -> None:
    if value is not True:
        tr.warn(path, "mlestar always seeds Python, NumPy and PyTorch (seed)")


def translate_tuning(tr: Translation, value: Any, path: str) -> None:
    """``hyperparameter_tuning`` -> ``refinement``: enabled, trials, time, sampler, search space."""
    walk(tr, value, path, _TUNING_HANDLERS, _tuning_key)


def _tuning_key(tr: Translation, key: str, item: Any, path: str) -> None:
    if key in RefinementConfig.model_fields:
        tr.put(f"refinement.{key}", item, path)
    elif key in ("cv_folds", "cross_validation"):
        tr.warn(path, "each trial validates on one stratified split (data.val_fraction)")
    else:
        tr.warn(path, "not a setting of mlestar's search (refinement); ignored")


def _method(tr: Translation, value: Any, path: str) -> None:
    """optuna -> its TPE sampler; random search -> random; grid search has no equivalent."""
    sampler = _SAMPLERS.get(norm(value))
    if sampler is None:
        tr.warn(path, f"mlestar searches with Optuna samplers (tpe, random, cmaes); {value!r} is not available, "
                      "refinement.sampler stays tpe")
    else:
        tr.put("refinement.sampler", sampler, path)


def _direction(tr: Translation, value: Any, path: str) -> None:
    if norm(value) != "maximize":
        tr.warn(path, "stage 6 always maximizes validation accuracy")


def _search_space(tr: Translation, value: Any, path: str) -> None:
    """Each parameter becomes a ParamSpec; one training cannot take is warned and left out."""
    space: dict[str, dict[str, Any]] = {}
    for raw_name, raw in (as_mapping(tr, value, path) or {}).items():
        name = _NAMES.get(str(raw_name), str(raw_name))
        spec = _param_spec(tr, name, raw, f"{path}.{raw_name}")
        if spec is not None:
            space[name] = spec
    if space:
        tr.put("refinement.search_space", space, path)
    else:
        tr.warn(path, "no parameter of it can be searched; refinement keeps its default search space")


def _param_spec(tr: Translation, name: str, raw: Any, path: str) -> dict[str, Any] | None:
    """One search dimension as ParamSpec fields, checked against what training accepts; None when left out."""
    if name not in TUNABLE:
        tr.warn(path, f"mlestar cannot search {name!r}; it searches {', '.join(TUNABLE)}")
        return None
    spec = _spec_fields(name, raw)
    if spec is None:
        tr.warn(path, f"{raw!r} is not a search range: write [low, high], a list of choices or "
                      "{type, low, high, log} / {type: categorical, choices}")
        return None
    try:
        check_param(name, ParamSpec.model_validate(spec))
    except (ValueError, ValidationError) as exc:
        tr.warn(path, f"{_first_error(exc)}; left out of the search")
        return None
    return spec


def _spec_fields(name: str, raw: Any) -> dict[str, Any] | None:
    """``[low, high]`` -> a range (log scale when it spans 100x or more), other lists -> choices."""
    if isinstance(raw, dict):
        return _dict_spec(name, raw)
    if not isinstance(raw, list) or not raw:
        return None
    tunable = TUNABLE[name]
    if tunable.kind == "categorical":
        return {"type": "categorical", "choices": [_choice(name, c) for c in raw]}
    values = [v for v in (number(item) for item in raw) if v is not None]
    if len(values) != len(raw):
        return None
    if tunable.kind == "float" and len(values) == 2:
        low, high = values
        return {"type": "float", "low": low, "high": high, "log": low > 0 and high / low >= LOG_SCALE_RATIO}
    # int settings (batch_size, epochs) and longer float lists: exactly the listed values
    return {"type": "categorical", "choices": [int(v) if tunable.kind == "int" else v for v in values]}


def _dict_spec(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Optuna-style ``{type: loguniform, low, high}`` -> ParamSpec fields (``type`` names as Optuna's suggest_*)."""
    spec = dict(raw)
    kind = norm(spec.get("type", ""))
    if kind in ("loguniform", "logfloat"):
        spec.update(type="float", log=True)
    elif kind in ("uniform", "discreteuniform"):
        spec["type"] = "float"
    elif kind in ("integer", "intuniform"):
        spec["type"] = "int"
    elif kind in ("choice", "choices"):
        spec["type"] = "categorical"
    if isinstance(spec.get("choices"), list):
        spec["choices"] = [_choice(name, c) for c in spec["choices"]]
    return spec


def _choice(name: str, raw: Any) -> Any:
    """Optimizer names in the legacy spelling (``Adam``) become mlestar's (``adam``)."""
    return (optimizer_name(raw)[0] or raw) if name == "optimizer" else raw


def _first_error(exc: Exception) -> str:
    """One line for a ParamSpec/check_param failure, naming the field when pydantic knows it."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _trials(tr: Translation, value: Any, path: str) -> None:
    tr.put("refinement.n_trials", value, path)
    # the template budgets its search in trials: keep that meaning rather than mlestar's share of stage 4's time
    tr.put("refinement.budget_share", None, path)


_ENVIRONMENT_HANDLERS: dict[str, Handler] = {
    "cuda_available": translate_cuda_available, "device": translate_device,
    "max_memory_gb": _memory_gb, "memory_gb": _memory_gb, "max_cpu_cores": to("training.num_threads"),
    "cpu_cores": to("training.num_threads"), "num_threads": to("training.num_threads"),
    "deterministic": to("deterministic"), "seed": to("seed"), "random_seed": to("seed"),
    "set_random_seed": _seeding,
}

_TUNING_HANDLERS: dict[str, Handler] = {
    "enabled": to("refinement.enabled"), "method": _method, "algorithm": _method, "n_trials": _trials,
    "trials": _trials, "num_trials": _trials, "optimization_direction": _direction, "direction": _direction,
    "search_space": _search_space, "timeout": to("refinement.timeout"),
}
