"""Finding optimizers and validating their settings.

Optimizers register under the entry-point group `promptyard.optimizers` (built-in ones the same
way as third-party ones). `OptimizerChoice` is what the optimize flow takes: the settings model of
a built-in optimizer (chosen by `name`, so the Prefect deployment form shows each optimizer's
settings with their descriptions), or `PluginOptimizer` for one installed by another package.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from optimizers.base import Optimizer, OptimizerSettings
from optimizers.bootstrap import BootstrapSettings
from optimizers.copro import CoproSettings
from optimizers.gepa import GepaSettings
from optimizers.metaprompt import MetaPromptSettings
from optimizers.mipro import MiproSettings
from optimizers.simba import SimbaSettings
from promptyard.errors import OptimizerError

__all__ = ["OptimizerChoice", "PluginOptimizer", "SettingInfo", "available_optimizers", "describe_settings",
           "get_optimizer", "settings_for"]


class PluginOptimizer(BaseModel):
    """An optimizer another package registers under the entry-point group `promptyard.optimizers`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["plugin"] = "plugin"
    plugin: str = Field(description="Its entry-point name.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Its settings (`promptyard optimizers list`).")


OptimizerChoice = Annotated[
    CoproSettings | GepaSettings | MiproSettings | BootstrapSettings | SimbaSettings | MetaPromptSettings
    | PluginOptimizer,
    Field(discriminator="name"),
]


@dataclass(frozen=True)
class SettingInfo:
    name: str
    type: str
    default: Any
    description: str


def available_optimizers() -> dict[str, type[Optimizer]]:
    """Optimizers registered under the `promptyard.optimizers` entry-point group."""
    found = {}
    for ep in entry_points(group="promptyard.optimizers"):
        cls = ep.load()
        if inspect.isclass(cls) and issubclass(cls, Optimizer):
            found[ep.name] = cls
    return found


def _optimizer_class(name: str) -> type[Optimizer]:
    optimizers = available_optimizers()
    if name not in optimizers:
        raise OptimizerError(
            f"Unknown optimizer {name!r}: choose one of {', '.join(sorted(optimizers)) or 'none installed'} "
            "(`promptyard optimizers list` shows their settings)."
        )
    return optimizers[name]


def describe_settings(cls: type[Optimizer]) -> list[SettingInfo]:
    """Each setting of an optimizer: name, type, default and description."""
    rows = []
    for key, info in cls.Settings.model_fields.items():
        if key == "name":
            continue
        kind = getattr(info.annotation, "__name__", str(info.annotation))
        rows.append(SettingInfo(key, kind, info.get_default(call_default_factory=True), info.description or ""))
    return rows


def settings_for(name: str, values: dict[str, Any] | None = None) -> OptimizerSettings:
    """The validated settings of optimizer `name`; an unknown or ill-typed setting fails naming it."""
    cls = _optimizer_class(name)
    values = dict(values or {})
    accepted = describe_settings(cls)
    unknown = sorted(set(values) - {s.name for s in accepted})
    if unknown:
        raise OptimizerError(
            f"Optimizer {name!r} does not accept {', '.join(unknown)}; it accepts: "
            + ", ".join(f"{s.name} (default {s.default!r})" for s in accepted))
    try:
        return cls.Settings(**{**values, "name": name})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        info = next((s for s in accepted if s.name == key), None)
        hint = f" It takes {info.type}, default {info.default!r}: {info.description}" if info else ""
        raise OptimizerError(f"Optimizer {name!r} setting {key}={first.get('input')!r} is not valid: "
                             f"{first['msg']}.{hint}") from None


def get_optimizer(choice: str | OptimizerSettings | PluginOptimizer, **values: Any) -> Optimizer:
    """An optimizer by name and settings (`get_optimizer("copro", breadth=4)`) or by settings model."""
    if isinstance(choice, PluginOptimizer):
        choice, values = choice.plugin, {**choice.settings, **values}
    if isinstance(choice, OptimizerSettings):
        choice, values = choice.name, {**choice.model_dump(exclude={"name"}, exclude_unset=True), **values}
    settings = settings_for(choice, values)
    return _optimizer_class(choice)(settings)
