"""The request settings stored with a prompt version: MLflow's model config and response format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["GenerationConfig"]


@dataclass(frozen=True)
class GenerationConfig:
    """Request settings stored with a prompt version (its MLflow model config)."""

    temperature: float = 0.0
    max_tokens: int = 32
    response_format: dict[str, Any] | None = None

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
