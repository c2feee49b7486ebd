"""promptyard's GEPA flow beside MLflow's `optimize_prompts` (GEPA), on the bundled model.

For each dataset, both start from the same seed template and get the same metric-call budget for
the search; each result is then scored on the same test split (≥ 200 examples). Printed per
system: test score of the prompt it registered (or of the seed, when it registered nothing), the
registered version's gain with a paired 95% interval, LM calls, wall time.

    .venv/bin/python bench/vs_mlflow.py [--metric-calls 100] [--datasets rotten_tomatoes intent_recognition]

Starts its own bundled LLM server on a free port and uses a temporary SQLite MLflow store.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

SEEDS = {
    "rotten_tomatoes": "Classify the sentiment of this movie review as positive or negative.\n\nReview: {{text}}",
    "intent_recognition": (
        "Classify the intent of this message. Possible intents: add_to_playlist, book_restaurant, get_weather, "
        "play_music, rate_book, search_creative_work, search_screening_event. Answer with the intent only.\n\n"
        "Message: {{text}}"),
}
TRAIN = 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Counter:
    def __init__(self):
        self.n = 0
        self.lock = threading.Lock()

    def add(self, *_args, **_kwargs):
        with self.lock:
            self.n += 1


def score_on_test(settings, data, template: str, generation=None):
    from promptyard.runtime import Endpoint, make_lm
    from promptyard.evaluation import score_template

    return score_template(template, data.rows("test"), lm=make_lm(Endpoint.from_settings(settings), cache=True),
                          metric=data.metric(), input_fields=data.card.input_fields, label_field=data.card.label_field,
                          generation=generation, concurrency=settings.lm_concurrency)


def run_ours(settings, dataset: str, metric_calls: int) -> dict:
    from flows.optimize import optimize_prompt
    from promptyard.registry import Registry

    registry = Registry(settings.tracking_uri)
    name = f"ours-{dataset.replace('_', '-')}"
    seed = registry.register(name, SEEDS[dataset])
    registry.set_alias(name, "production", int(seed.version))
    started = time.perf_counter()
    result = optimize_prompt(prompt=f"{name}@production", dataset=dataset,
                             optimizer={"name": "gepa", "max_metric_calls": metric_calls, "train_size": TRAIN,
                                        "max_candidates": 3})
    seconds = time.perf_counter() - started
    test, registered = result.test, result.registered_version
    score = test.candidate if registered else (test.baseline if test else None)
    return {"system": "promptyard gepa", "registered": registered, "test": score, "seed_test": test and test.baseline,
            "interval": test and (test.low, test.high), "calls": result.budget.calls,
            "seconds": seconds, "decision": result.decision}


def run_mlflow(settings, data, dataset: str, metric_calls: int, seed_test: float | None) -> dict:
    import litellm
    import mlflow
    import openai
    from mlflow.genai.optimize.optimizers import GepaPromptOptimizer
    from mlflow.genai.scorers import scorer

    from promptyard.evaluation import paired_bootstrap

    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    name = f"mlflow-{dataset.replace('_', '-')}"
    prompt = mlflow.genai.register_prompt(name=name, template=SEEDS[dataset])
    client = openai.OpenAI(base_url=settings.lm_url, api_key="not-needed")
    task_calls, reflection_calls = Counter(), Counter()
    litellm.success_callback = [reflection_calls.add]
    litellm.failure_callback = [reflection_calls.add]
    metric = data.metric()

    def predict_fn(text: str) -> str:
        task_calls.add()
        current = mlflow.genai.load_prompt(f"prompts:/{name}/{prompt.version}")
        reply = client.chat.completions.create(model=settings.lm_model, temperature=0.0, max_tokens=32,
                                               messages=[{"role": "user", "content": current.format(text=text)}])
        return reply.choices[0].message.content or ""

    @scorer
    def exact_label(outputs, expectations) -> float:
        return metric.score(metric.parse(outputs), expectations["expected_response"])

    rows = data.rows("train", TRAIN)
    train = [{"inputs": {"text": r["text"]}, "expectations": {"expected_response": r[data.card.label_field]}}
             for r in rows]
    os.environ["OPENAI_API_BASE"] = os.environ["OPENAI_BASE_URL"] = settings.lm_url
    os.environ.setdefault("OPENAI_API_KEY", "not-needed")
    started = time.perf_counter()
    result = mlflow.genai.optimize_prompts(
        predict_fn=predict_fn, train_data=train, prompt_uris=[prompt.uri], scorers=[exact_label],
        optimizer=GepaPromptOptimizer(reflection_model=f"openai:/{settings.lm_model}", max_metric_calls=metric_calls),
    )
    seconds = time.perf_counter() - started
    optimized = result.optimized_prompts[0]
    test_result = score_on_test(settings, data, optimized.template)
    seed_result = score_on_test(settings, data, SEEDS[dataset])
    comparison = paired_bootstrap(seed_result.scores, test_result.scores)
    return {"system": "mlflow optimize_prompts gepa", "registered": int(optimized.version),
            "test": test_result.accuracy, "seed_test": seed_result.accuracy, "interval": (comparison.low, comparison.high),
            "calls": task_calls.n + reflection_calls.n, "seconds": seconds,
            "decision": "template unchanged" if optimized.template == SEEDS[dataset] else "template changed"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metric-calls", type=int, default=100)
    parser.add_argument("--datasets", nargs="+", default=list(SEEDS))
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="promptyard-vs-mlflow-"))
    os.environ.update({"PROMPTYARD_HOME": str(home), "PROMPTYARD_LLM_PORT": str(free_port()),
                       "PROMPTYARD_MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
                       "PROMPTYARD_EXPERIMENT": "vs-mlflow", "MLFLOW_LOGGING_LEVEL": "WARNING"})
    from promptyard.evaluation import load_dataset
    from promptyard.runtime import apply_offline_env, get_settings, stack

    apply_offline_env()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    settings = get_settings()
    print(f"starting the bundled LLM on {settings.lm_url} ...")
    rows = []
    with stack.running(settings, ("llm",), echo=lambda _: None):  # stopped after, also on Ctrl-C / SIGTERM
        for dataset in args.datasets:
            data = load_dataset(dataset, cache_dir=home / "hf_cache")
            ours = run_ours(settings, dataset, args.metric_calls)
            print(f"{dataset}: promptyard done in {ours['seconds']:.0f} s — {ours['decision']}", flush=True)
            theirs = run_mlflow(settings, data, dataset, args.metric_calls, ours["seed_test"])
            print(f"{dataset}: mlflow done in {theirs['seconds']:.0f} s — {theirs['decision']}", flush=True)
            if ours["test"] is None:  # nothing registered and the test split untouched: the seed stays in place
                ours.update(test=theirs["seed_test"], seed_test=theirs["seed_test"])
            rows += [(dataset, ours), (dataset, theirs)]

    print()
    print(f"{'dataset':<20}{'system':<30}{'seed test':>10}{'test':>8}{'gain 95% interval':>22}{'registered':>12}"
          f"{'LM calls':>10}{'wall s':>8}")
    for dataset, r in rows:
        interval = f"[{r['interval'][0]:+.3f}, {r['interval'][1]:+.3f}]" if r["interval"] else "-"
        seed = f"{r['seed_test']:.3f}" if r["seed_test"] is not None else "-"
        test = f"{r['test']:.3f}" if r["test"] is not None else "-"
        print(f"{dataset:<20}{r['system']:<30}{seed:>10}{test:>8}{interval:>22}{str(r['registered'] or '-'):>12}"
              f"{r['calls']:>10}{r['seconds']:>8.0f}")
    print(f"\nsame search budget: {args.metric_calls} metric calls each; test splits: the datasets' own (≥ 200).")
    print("promptyard registers only when the paired interval lies above 0; MLflow registers a version every time.")


if __name__ == "__main__":
    main()
