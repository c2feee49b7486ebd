"""The request settings stored with a prompt version: MLflow's model config and response format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from promptyard.errors import UserError

__all__ = ["GenerationConfig"]


@dataclass(frozen=True)
class GenerationConfig:
    """Request settings stored with a prompt version (its MLflow model config)."""

    temperature: float = 0.0
    max_tokens: int = 32
    response_format: dict[str, Any] | None = None

    @classmethod
    def checked(cls, config: Any, response_format: Any, where: str) -> GenerationConfig:
        """Settings a person wrote (a prompt file): every key known to MLflow's model config and of
        the right type, else one message naming the key and the fix."""
        import difflib

        from pydantic import ValidationError

        from mlflow.entities.model_registry.prompt_version import PromptModelConfig

        config = config or {}
        if not isinstance(config, dict):
            raise UserError(f"{where}: model_config must be a mapping like {{temperature: 0.2, max_tokens: 64}}.")
        known = list(PromptModelConfig.model_fields)
        for key in config:
            if key not in known:
                near = difflib.get_close_matches(str(key), known, n=1)
                raise UserError(f"{where}: model_config has no setting {key!r}"
                                + (f" (did you mean {near[0]!r}?)" if near else "")
                                + f"; known: {', '.join(known)}.")
        try:
            PromptModelConfig(**config)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(part) for part in first["loc"])
            raise UserError(f"{where}: model_config {key}: {config.get(key)!r} is not valid ({first['msg']}); "
                            "e.g. temperature: 0.2, max_tokens: 64.") from None
        if response_format is not None and not isinstance(response_format, dict):
            raise UserError(f"{where}: response_format must be a JSON schema (a mapping), or left out.")
        return cls.from_model_config(config, response_format)

    @classmethod
    def from_model_config(cls, config: dict[str, Any] | None, response_format: Any = None) -> GenerationConfig:
        config = config or {}
        return cls(
            temperature=float(config.get("temperature", 0.0) or 0.0),
            max_tokens=int(config.get("max_tokens", 32) or 32),
            response_format=response_format if isinstance(response_format, dict) else None,
        )

    def model_config(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}

    def request_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.response_format:
            kwargs["response_format"] = self.response_format
        return kwargs
