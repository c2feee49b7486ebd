"""The prompt registry: MLflow's own, so `mlflow.genai.load_prompt` reads what we write.

`Registry` is the one door to MLflow's prompt API: prompts, versions, aliases and prompt-level
tags are read and written here and nowhere else. Its public methods only read; its writes
(`_register`, `_set_alias`, ...) are for `promptyard.governance`, which checks roles, refuses
reserved keys and audits every change.
"""

from __future__ import annotations

from collections.abc import Iterable

from promptyard.errors import PromptNotFoundError, TrackingUnavailableError
from promptyard.runtime import require_answer
from promptyard.registry.contract import TAG_CONTRACT, Contract
from promptyard.registry.generation import GenerationConfig
from promptyard.registry.refs import PromptRef
from promptyard.registry.templates import PromptTemplate, Template, check_variables, template_text

__all__ = ["Registry"]


class Registry:
    """Register, read and alias prompt versions in an MLflow tracking store."""

    def __init__(self, tracking_uri: str):
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def check(self, timeout: float = 5.0) -> None:
        """Raise `TrackingUnavailableError` unless an HTTP tracking server answers."""
        if not self.tracking_uri.startswith("http"):
            return
        require_answer(f"{self.tracking_uri.rstrip('/')}/health", TrackingUnavailableError,
                       f"The MLflow tracking server at {self.tracking_uri}",
                       "Start it with `promptyard up`, or set PROMPTYARD_MLFLOW_TRACKING_URI to a running server.",
                       timeout=timeout)

    # -- writing -------------------------------------------------------------------------------
    def _register(
        self,
        name: str,
        template: PromptTemplate,
        *,
        commit_message: str = "",
        tags: dict[str, str] | None = None,
        generation: GenerationConfig | None = None,
        available_fields: Iterable[str] | None = None,
    ):
        """Register `template` (text, or chat messages) as a new version of `name` (created if new) and return it."""
        PromptRef.parse(name)
        parsed = Template.parse(template)
        if available_fields is not None:
            check_variables(parsed.text, available_fields)
        generation = generation or GenerationConfig()
        if self.prompt(name) is None:  # a new prompt: its own tags stay empty (MLflow's register_prompt
            self._create_prompt(name)   # would copy the version's tags onto it)
        return self._client.create_prompt_version(
            name=name,
            template=template,
            description=commit_message or None,
            tags={str(k): str(v) for k, v in (tags or {}).items()},
            response_format=generation.response_format,
            model_config=generation.model_config(),
        )

    def _create_prompt(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._client.create_prompt(name)
        except MlflowException as exc:
            if "already exists" not in str(exc).lower():  # another process created it first: fine
                raise

    def _set_alias(self, name: str, alias: str, version: int) -> None:
        PromptRef.parse(f"{name}@{alias}")
        self.get(f"{name}/{version}")  # raises a clear error for an unknown version
        self._client.set_prompt_alias(name, alias, int(version))

    def _set_version_tags(self, name: str, version: int, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self._client.set_prompt_version_tag(name, version, key, str(value))

    def _delete_version_tag(self, name: str, version: int, key: str) -> None:
        self._client.delete_prompt_version_tag(name, int(version), key)

    def _set_prompt_tag(self, name: str, key: str, value: str) -> None:
        self._client.set_prompt_tag(name, key, str(value))

    def _delete_prompt_tag(self, name: str, key: str) -> None:
        self._client.delete_prompt_tag(name, key)

    # -- reading -------------------------------------------------------------------------------
    def prompt(self, name: str):
        """The prompt (its metadata and prompt-level tags), or None when there is none by that name."""
        return self._client.get_prompt(name)

    def prompt_tags(self, name: str) -> dict[str, str]:
        """The prompt-level tags of `name` (empty when the prompt does not exist)."""
        found = self.prompt(name)
        return dict(found.tags or {}) if found is not None else {}

    def _model(self, name: str):
        """The registered model underneath the prompt, or None. Read through MLflow's registry client:
        the public client hides prompts from its model API, and its prompt API reports an alias only
        while the version it points to still carries MLflow's prompt tag — which a client can delete."""
        from mlflow.exceptions import MlflowException

        try:
            return self._client._get_registry_client().get_registered_model(name)
        except MlflowException:
            return None

    def aliases(self, name: str) -> dict[str, int]:
        """Every alias of `name` and the version it points to (empty when there is no such prompt)."""
        model = self._model(name)
        return {alias: int(version) for alias, version in (model.aliases or {}).items()} if model else {}

    def alias_version(self, name: str, alias: str) -> int | None:
        """The version `name@alias` points to, or None when the prompt or the alias does not exist."""
        return self.aliases(name).get(alias)

    def created_at(self, name: str) -> float | None:
        """When this prompt (this incarnation of the name) was created, in seconds; None if there is none."""
        model = self._model(name)
        return model.creation_timestamp / 1000 if model else None

    def declared_contract(self, name: str) -> Contract | None:
        """The contract declared on the prompt (tag `promptyard.contract`), if any."""
        text = self.prompt_tags(name).get(TAG_CONTRACT)
        return Contract.from_tag(text) if text else None

    def get(self, ref: str | PromptRef):
        """The prompt version a reference points to, or `PromptNotFoundError`."""
        return self.get_with_prompt(ref)[0]

    def get_with_prompt(self, ref: str | PromptRef):
        """(version, prompt): the version a reference points to and its prompt (prompt-level tags)."""
        from mlflow.exceptions import MlflowException

        ref = ref if isinstance(ref, PromptRef) else PromptRef.parse(ref)
        prompt = self._client.get_prompt(ref.name)
        if prompt is None:
            known = ", ".join(p.name for p in self.list()[:20]) or "none yet"
            raise PromptNotFoundError(
                f"No prompt named {ref.name!r} in the registry at {self.tracking_uri} (known: {known}). "
                f"Register it with `promptyard prompts register {ref.name} --template ...`."
            )
        try:
            if ref.alias:
                found = self._client.get_prompt_version_by_alias(ref.name, ref.alias)
            elif ref.version:
                found = self._client.get_prompt_version(ref.name, ref.version)
            else:
                found = self._client.get_prompt_version(ref.name, max(int(v.version) for v in self._client.search_prompt_versions(ref.name)))
        except MlflowException:
            found = None
        if found is None:
            versions = self.versions(ref.name)
            aliases = sorted({a for v in versions for a in v.aliases})
            raise PromptNotFoundError(
                f"Prompt {ref.name!r} has no {'alias ' + repr(ref.alias) if ref.alias else 'version ' + str(ref.version)}. "
                f"Versions: {', '.join(str(v.version) for v in reversed(versions)) or 'none'}; aliases: "
                f"{', '.join(aliases) or 'none'}. Use one of those, or set the alias with "
                f"`promptyard prompts alias {ref.name} ALIAS VERSION`."
            )
        return found, prompt

    def has_version(self, name: str, version: int) -> bool:
        """Whether `name/version` exists (False when the prompt or the version does not)."""
        from mlflow.exceptions import MlflowException

        try:
            return self._client.get_prompt_version(name, int(version)) is not None
        except MlflowException:
            return False

    def versions(self, name: str) -> list:
        """Every version of `name` with its aliases, newest first."""
        numbers, token = [], None
        while True:
            page = self._client.search_prompt_versions(name, max_results=100, page_token=token)
            numbers.extend(int(v.version) for v in page)
            token = page.token
            if not token:
                break
        # search results carry no aliases; a version read one by one does
        return [self._client.get_prompt_version(name, n) for n in sorted(numbers, reverse=True)]

    def list(self, filter_string: str | None = None) -> list:
        """Every prompt (the latest metadata, not versions)."""
        prompts, token = [], None
        while True:
            page = self._client.search_prompts(filter_string=filter_string, max_results=100, page_token=token)
            prompts.extend(page)
            token = page.token
            if not token:
                break
        return sorted(prompts, key=lambda p: p.name)

    def find_version(self, name: str, template: str, generation: GenerationConfig):
        """The newest version of `name` with exactly this template and request settings, if any."""
        if self.prompt(name) is None:
            return None
        for version in self.versions(name):
            if version.template == template and self.generation(version) == generation:
                return version
        return None

    @staticmethod
    def generation(version) -> GenerationConfig:
        """The request settings stored with a version."""
        return GenerationConfig.from_model_config(version.model_config, version.response_format)

    @staticmethod
    def template(version) -> PromptTemplate:
        """What a version holds: its text, or its chat messages (MLflow's chat format)."""
        template = version.template
        return template if isinstance(template, str) else [dict(m) for m in template]

    @staticmethod
    def template_text(version) -> str:
        """A version's template as text: a chat template shows each message under its role."""
        return template_text(version.template)
