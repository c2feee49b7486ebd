"""The command line, the face of promptyard: one module per noun, registered here and only here.

The only package that may import `flows/`. Library errors become one clean message on stderr and
exit code 1 (`common.PromptyardGroup`), here and nowhere else.
"""

from __future__ import annotations

import logging
import os

import click

from promptyard.cli import (ab, audit, datasets, evaluate, history, library, optimize, policy, promotion, prompts,
                            release, stack, team)
from promptyard.cli.common import PromptyardGroup
from promptyard.runtime import apply_offline_env, get_settings, quiet_known_errors

__all__ = ["cli", "main"]


@click.group(cls=PromptyardGroup)
@click.version_option(package_name="promptyard")
def cli() -> None:
    """Prompt registry on MLflow and prompt optimization with DSPy, orchestrated by Prefect.

    \b
    Example:
      promptyard up
      promptyard prompts register intent --file prompt.txt --dataset intent_recognition --alias production
      promptyard optimize intent@production --dataset intent_recognition
    """
    apply_offline_env()
    if get_settings().team_mode:  # the team's Prefect API asks for credentials
        from promptyard.runtime.postgres import use_prefect_auth

        use_prefect_auth(get_settings())
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when MLflow is first imported
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("dspy.clients.lm").setLevel(logging.ERROR)
    quiet_known_errors()


for command in (stack.up, stack.down, stack.status, stack.deploy, stack.worker, datasets.datasets,
                optimize.optimize, optimize.demo, optimize.optimizers, evaluate.eval_, prompts.prompts, ab.ab,
                release.release, audit.audit, policy.policy, team.migrate):
    cli.add_command(command)
for command in (promotion.promote, promotion.approve, promotion.reject, promotion.rollback, promotion.contract,
                history.history, library.search, library.diff, library.export, library.import_):
    prompts.prompts.add_command(command)


def main() -> None:
    cli(prog_name="promptyard")
