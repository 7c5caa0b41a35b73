"""Loading a strategy class from the .py a strategy.toml names."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from perpbot.config import LoadedStrategy, format_validation_error
from perpbot.engine.strategy import Strategy
from perpbot.errors import BadInput


def load_strategy_class(path: Path, class_name: str | None, source: str) -> type[Strategy]:
    module_name = f"perpbot_user_strategy_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise BadInput(f"{source}: [strategy] file: cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise BadInput(f"{path}:{exc.lineno}: syntax error in strategy: {exc.msg}") from None
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise BadInput(f"{path}: importing the strategy failed: {reason}") from None
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Strategy)
        and obj is not Strategy
        and obj.__module__ == module_name
    ]
    if class_name is not None:
        match = [c for c in found if c.__name__ == class_name]
        if not match:
            names = ", ".join(sorted(c.__name__ for c in found)) or "none"
            raise BadInput(
                f"{source}: [strategy] class: got {class_name!r}, expected a Strategy subclass "
                f"defined in {path.name} (found: {names})"
            )
        return match[0]
    if len(found) != 1:
        names = ", ".join(sorted(c.__name__ for c in found)) or "none"
        raise BadInput(
            f"{source}: [strategy] class: missing, {path.name} defines {len(found)} Strategy "
            f"subclasses ({names}); name one"
        )
    return found[0]


def validate_params(cls: type[Strategy], params: dict[str, Any], source: str) -> Any:
    model: type[BaseModel] | None = cls.Params
    if model is None:
        return dict(params)
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        line = format_validation_error(source, exc, prefix=("strategy", "params"))
        raise BadInput(line) from None


def instantiate(loaded: LoadedStrategy) -> Strategy:
    """The configured strategy, with validated params; BadInput on any problem."""
    cfg = loaded.config.strategy
    source = str(loaded.path)
    cls = load_strategy_class(loaded.resolve(cfg.file), cfg.class_name, source)
    return cls(validate_params(cls, cfg.params, source))
