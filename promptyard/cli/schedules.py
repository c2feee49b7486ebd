"""Nightly deployments for every prompt listed in a file (`promptyard deploy --prompts FILE`).

    schedule: {cron: "0 3 * * *", timezone: UTC}     # the default for every entry (optional)
    prompts:
      - prompt: intent@production
        dataset: intent_recognition
        optimizer: {name: copro, max_candidates: 4}  # optional, as `promptyard optimize` takes it
        budget: {calls: 3000}                        # optional
        cron: "30 2 * * *"                           # optional, this entry's own time

Checked entry by entry before any service is contacted; written as a Prefect deployment file with one
`optimize-<name>-<alias or version>` deployment per entry on the work pool.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from promptyard.errors import UserError
from promptyard.registry import PromptRef
from promptyard.runtime import read_text

__all__ = ["deployments_file"]

_KEYS = {"prompt", "dataset", "optimizer", "search", "selection", "budget", "cron", "timezone"}


def _cron(value, where: str) -> str:
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=str(value))
    except ValueError:
        raise UserError(f"{where}: cron {value!r} is not a cron expression; write five fields, e.g. '0 3 * * *'.") \
            from None
    return str(value)


def deployments_file(prompts_file: Path, project_root: Path, pool: str, out: Path) -> list[str]:
    """Write the deployments of the prompts listed in `prompts_file` to `out`; return their names."""
    try:
        spec = yaml.safe_load(read_text(prompts_file, "prompts file"))
    except yaml.YAMLError as exc:
        raise UserError(f"{prompts_file} is not valid YAML ({str(exc).splitlines()[0]}).") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("prompts"), list) or not spec["prompts"]:
        raise UserError(f"{prompts_file} needs a non-empty list under `prompts:` (entries with prompt and dataset).")
    default = spec.get("schedule") or {"cron": "0 3 * * *", "timezone": "UTC"}
    deployments, names = [], []
    for i, entry in enumerate(spec["prompts"], 1):
        where = f"{prompts_file} entry {i}"
        if not isinstance(entry, dict) or not {"prompt", "dataset"} <= entry.keys():
            raise UserError(f"{where} needs `prompt` (NAME@ALIAS or NAME/VERSION) and `dataset`.")
        unknown = set(entry) - _KEYS
        if unknown:
            raise UserError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; allowed: "
                            f"{', '.join(sorted(_KEYS))}.")
        ref = PromptRef.parse(str(entry["prompt"]))
        label = entry["prompt"].split("@", 1)[-1] if "@" in entry["prompt"] else entry["prompt"].split("/")[-1]
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"optimize-{ref.name}-{label}")
        if name in names:
            raise UserError(f"{where}: {entry['prompt']} is listed twice; list each prompt once.")
        parameters = {k: entry[k] for k in ("prompt", "dataset", "optimizer", "search", "selection", "budget")
                      if k in entry}
        schedule = {"cron": _cron(entry.get("cron", default.get("cron")), where),
                    "timezone": entry.get("timezone", default.get("timezone", "UTC"))}
        deployments.append({"name": name, "entrypoint": "flows/optimize.py:optimize_prompt",
                            "description": f"Optimize {entry['prompt']} on {entry['dataset']} on a schedule.",
                            "tags": ["promptyard", "optimization"], "parameters": parameters,
                            "work_pool": {"name": pool, "work_queue_name": "default"}, "schedules": [schedule]})
        names.append(name)
    out.write_text(yaml.safe_dump({
        "name": "promptyard-prompts", "prefect-version": "3.8.8", "build": None, "push": None,
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": str(project_root)}}],
        "deployments": deployments}, sort_keys=False))
    return names
