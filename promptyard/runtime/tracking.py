"""MLflow tracking: the one door to MLflow's runs (optimizations, evaluations, A/B analyses), and to
the traces and evaluation datasets that datasets are harvested from.

Everything goes through an explicit `MlflowClient` and run ids, so candidates scored in
parallel threads log to the right run. Runs are created in `experiment` (created on first use);
reads such as `search_runs` look across every experiment.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

__all__ = ["Tracker"]

_PARAM_LIMIT = 6000


def _param(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _PARAM_LIMIT else text[: _PARAM_LIMIT - 3] + "..."


class Tracker:
    def __init__(self, tracking_uri: str, experiment: str | None = None):
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._experiment_id: str | None = None

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            if not self.experiment:
                raise ValueError("this Tracker was opened for reading only: give it an experiment to create runs")
            found = self._client.get_experiment_by_name(self.experiment)
            self._experiment_id = found.experiment_id if found else self._create(self.experiment)
        return self._experiment_id

    def _create(self, experiment: str) -> str:
        """A server stores artifacts itself; a local store keeps them in the state directory, not the cwd."""
        if self.tracking_uri.startswith("http"):
            return self._client.create_experiment(experiment)
        from promptyard.runtime.settings import get_settings

        location = (get_settings().home_dir / "mlartifacts" / experiment).as_uri()
        return self._client.create_experiment(experiment, artifact_location=location)

    # -- writing -------------------------------------------------------------------------------
    def start_run(self, name: str, *, parent_id: str | None = None, tags: dict[str, str] | None = None) -> str:
        tags = {"mlflow.runName": name, **(tags or {})}
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        return self._client.create_run(self.experiment_id, tags=tags, run_name=name).info.run_id

    def log(self, run_id: str, *, params: dict | None = None, metrics: dict | None = None, tags: dict | None = None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        self._client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, _param(v)) for k, v in (params or {}).items()],
            tags=[RunTag(k, _param(v)) for k, v in (tags or {}).items()],
        )

    def log_score(self, run_id: str, result, *, split: str) -> None:
        """A `ScoreResult`: metrics with the split as prefix, and the per-example table as an artifact."""
        self.log(run_id, metrics=result.metrics(prefix=f"{split}_"))
        self.log_table(run_id, result.table(), f"predictions/{split}.json")

    def log_table(self, run_id: str, table: dict[str, list], path: str) -> None:
        self._client.log_table(run_id, table, path)

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self._client.log_text(run_id, text, path)

    def log_figure(self, run_id: str, figure, path: str) -> None:
        self._client.log_figure(run_id, figure, path)

    def log_artifact(self, run_id: str, local_path: str) -> None:
        self._client.log_artifact(run_id, local_path)

    def log_dataset(self, run_id: str, data) -> None:
        """A `LoadedDataset`: each split as a run input, with the dataset digest and split sizes."""
        import mlflow.data
        import pandas as pd
        from mlflow.entities import DatasetInput, InputTag

        inputs = []
        for split, rows in data.splits.items():
            with warnings.catch_warnings():  # MLflow registers its local-file source type twice and says so
                warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
                dataset = mlflow.data.from_pandas(
                    pd.DataFrame(rows), source=str(data.path), targets=data.card.label_field,
                    name=f"{data.card.name}-{split}", digest=f"{data.digest}-{split}",
                )
            inputs.append(DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", split)]))
        self._client.log_inputs(run_id, datasets=inputs)
        self.log(
            run_id,
            params={
                "dataset": data.card.name,
                "dataset_digest": data.digest,
                "split_seed": data.card.seed,
                **{f"{split}_size": len(ds) for split, ds in data.splits.items()},
            },
        )

    def link_prompt_version(self, run_id: str, name: str, version: int) -> None:
        """List the prompt version under the run's "registered prompts" in the MLflow UI.

        The run tag MLflow's own `link_prompt_version_to_run` writes (through this tracker's store:
        MLflow's helper reads the process-wide tracking URI instead)."""
        from mlflow.tracing.constant import TraceTagKey
        from mlflow.tracing.utils.prompt import update_linked_prompts_tag

        prompt = self._client.get_prompt_version(name, int(version))
        current = self.get_run(run_id).data.tags.get(TraceTagKey.LINKED_PROMPTS)
        self._client.set_tag(run_id, TraceTagKey.LINKED_PROMPTS, update_linked_prompts_tag(current, [prompt]))

    def child_run(self, parent_id: str, name: str, *, tags: dict[str, str]) -> str:
        """The child run that carries these tags (an earlier attempt's, adopted by `parent_id` and
        reopened), or a new one: retries and resumed runs make no duplicates."""
        found = self.search_runs(" and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items()), max_results=1)
        if not found:
            return self.start_run(name, parent_id=parent_id, tags=tags)
        run_id = found[0].info.run_id
        self.adopt(run_id, parent_id)
        self._client.update_run(run_id, status="RUNNING")
        return run_id

    def adopt(self, run_id: str, parent_id: str) -> None:
        """Show `run_id` under `parent_id` in the MLflow UI."""
        self._client.set_tag(run_id, "mlflow.parentRunId", parent_id)

    def finish(self, run_id: str, ok: bool = True, *, reason: str | None = None) -> None:
        if reason:
            self._client.set_tag(run_id, "promptyard.failure", _param(reason))
        self._client.set_terminated(run_id, "FINISHED" if ok else "FAILED")

    # -- reading -------------------------------------------------------------------------------
    def get_run(self, run_id: str):
        return self._client.get_run(run_id)

    def search_runs(self, filter_string: str, *, order_by: list[str] | None = None, max_results: int = 50) -> list:
        """Runs in any experiment that match `filter_string`."""
        experiments = [e.experiment_id for e in self._client.search_experiments(max_results=1000)]
        if not experiments:
            return []
        return list(self._client.search_runs(experiments, filter_string=filter_string, order_by=order_by,
                                             max_results=max_results))

    def experiment_id_of(self, experiment: str) -> str:
        """The id of an experiment given by name or id; a clear error naming the known ones otherwise."""
        from promptyard.errors import UserError

        found = self._client.get_experiment_by_name(experiment)
        if found is None and experiment.isdigit():
            from mlflow.exceptions import MlflowException

            try:
                found = self._client.get_experiment(experiment)
            except MlflowException:
                found = None
        if found is None:
            known = ", ".join(e.name for e in self._client.search_experiments(max_results=20)) or "none"
            raise UserError(f"No MLflow experiment {experiment!r} at {self.tracking_uri} (experiments: {known}): give "
                            "the experiment your app logs its traces to, by name or id.")
        return found.experiment_id

    def traces(self, experiment: str, *, filter_string: str | None = None, max_results: int = 10_000) -> list:
        """Traces of an experiment (name or id) with their spans and assessments, up to `max_results`."""
        import warnings

        experiment_id, traces, token = self.experiment_id_of(experiment), [], None
        while len(traces) < max_results:
            with warnings.catch_warnings():  # MLflow asks for `locations` instead of experiment ids, and says so
                warnings.simplefilter("ignore")
                page = self._client.search_traces(experiment_ids=[experiment_id], filter_string=filter_string,
                                                  max_results=min(500, max_results - len(traces)), page_token=token)
            traces.extend(page)
            token = page.token
            if not token or not page:
                break
        return traces

    def evaluation_dataset(self, name: str):
        """An MLflow evaluation dataset (the Datasets page) by name or id, with its records."""
        from promptyard.errors import UserError

        if name.startswith("d-"):
            from mlflow.exceptions import MlflowException

            try:
                return self._client.get_dataset(name)
            except MlflowException:
                pass
        quoted = f'"{name}"' if '"' not in name else f"'{name}'"
        found = list(self._client.search_datasets(filter_string=f"name = {quoted}", max_results=2))
        if len(found) != 1:
            known = ", ".join(d.name for d in self._client.search_datasets(max_results=20)) or "none"
            raise UserError(f"{'No' if not found else 'More than one'} MLflow evaluation dataset named {name!r} at "
                            f"{self.tracking_uri} (datasets: {known}): give its name or its id (d-...).")
        return found[0]

    def run_url(self, run_id: str) -> str:
        if self.tracking_uri.startswith("http"):
            return f"{self.tracking_uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{run_id}"
        return f"run {run_id} in {self.tracking_uri} (view with `mlflow ui --backend-store-uri {self.tracking_uri}`)"
