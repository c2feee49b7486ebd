"""MLflow tracking for optimizations: one parent run, one child run per candidate.

Everything goes through an explicit `MlflowClient` and run ids, so candidates scored in
parallel threads log to the right run.
"""

from __future__ import annotations

import time
from typing import Any

from promptyard.data import LoadedDataset
from promptyard.scoring import ScoreResult

__all__ = ["Tracker"]

_PARAM_LIMIT = 6000


def _param(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _PARAM_LIMIT else text[: _PARAM_LIMIT - 3] + "..."


class Tracker:
    def __init__(self, tracking_uri: str, experiment: str):
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found else self._create(experiment)

    def _create(self, experiment: str) -> str:
        """A server stores artifacts itself; a local store keeps them in the state directory, not the cwd."""
        if self.tracking_uri.startswith("http"):
            return self.client.create_experiment(experiment)
        from promptyard.settings import get_settings

        location = (get_settings().home_dir / "mlartifacts" / experiment).as_uri()
        return self.client.create_experiment(experiment, artifact_location=location)

    def start_run(self, name: str, *, parent_id: str | None = None, tags: dict[str, str] | None = None) -> str:
        tags = {"mlflow.runName": name, **(tags or {})}
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        return self.client.create_run(self.experiment_id, tags=tags, run_name=name).info.run_id

    def log(self, run_id: str, *, params: dict | None = None, metrics: dict | None = None, tags: dict | None = None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, _param(v)) for k, v in (params or {}).items()],
            tags=[RunTag(k, _param(v)) for k, v in (tags or {}).items()],
        )

    def log_score(self, run_id: str, result: ScoreResult, *, split: str) -> None:
        """Metrics with the split as prefix, and the per-example table as an artifact."""
        self.log(run_id, metrics=result.metrics(prefix=f"{split}_"))
        self.client.log_table(run_id, result.table(), f"predictions/{split}.json")

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self.client.log_text(run_id, text, path)

    def log_dataset(self, run_id: str, data: LoadedDataset) -> None:
        """Each split as a run input, with the dataset digest and split sizes."""
        import mlflow.data
        from mlflow.entities import DatasetInput, InputTag

        inputs = []
        for split, ds in data.splits.items():
            dataset = mlflow.data.from_huggingface(
                ds, path=str(data.path), targets=data.card.label_field,
                name=f"{data.card.name}-{split}", digest=f"{data.digest}-{split}",
            )
            inputs.append(DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", split)]))
        self.client.log_inputs(run_id, datasets=inputs)
        self.log(
            run_id,
            params={
                "dataset": data.card.name,
                "dataset_digest": data.digest,
                "split_seed": data.card.seed,
                **{f"{split}_size": len(ds) for split, ds in data.splits.items()},
            },
        )

    def finish(self, run_id: str, ok: bool = True) -> None:
        self.client.set_terminated(run_id, "FINISHED" if ok else "FAILED")

    def run_url(self, run_id: str) -> str:
        if self.tracking_uri.startswith("http"):
            return f"{self.tracking_uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{run_id}"
        return f"run {run_id} in {self.tracking_uri} (view with `mlflow ui --backend-store-uri {self.tracking_uri}`)"
