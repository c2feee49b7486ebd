"""A deterministic OpenAI-compatible chat server for tests (a test double, never product code).

Behaviour, by the user message it receives:
- a proposer prompt (an instruction-rewriting request) -> `proposal` text;
- a judge prompt ("You grade an answer") -> the top of the scale when the answer matches the
  reference, else 1;
- a task prompt -> a sentiment answer: correct (by the words "good"/"bad" in the last message's text
  after its last ':') when the conversation (every message as "role: content": a chat prompt's
  system message holds the instruction) contains `magic_word`, otherwise always `default_answer`.
  At temperature ≥ 1 (sampling) without `magic_word`, answers vary from request to request.
  With a `response_format`, the answer comes wrapped as JSON `{"label": ...}`.
Every request is recorded in `requests`; `peak` is the most chat requests it had in flight at once,
and with `cap=C` it refuses (429) any request beyond C in flight, counting them in `over_cap`.

Faults, for fault tests and `bench/faults.py`: `Faults(rate=0.2, seed=1)` fails a seeded share of
requests with a 429 carrying Retry-After, a 500, a hang longer than the client waits, a 200
whose body is not JSON, or a 200 with no answer in it (empty content, null content, no choices, in turn); `burst(kind, n)` fails the next n requests with one kind. Each fault
served is counted in `faults_served`.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULT_KINDS = ("429", "500", "timeout", "malformed", "empty")


@dataclass
class Faults:
    rate: float = 0.2
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    retry_after_s: float = 0.1  # what a 429 asks the client to wait
    hang_s: float = 3.0  # how long a "timeout" request hangs (set the client's timeout below it)
    task_only: bool = True  # leave proposer and judge requests alone
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self):
        self._rng = random.Random(self.seed)

    def draw(self) -> str | None:
        return self._rng.choice(self.kinds) if self._rng.random() < self.rate else None

PROPOSER_MARKERS = ("Rewrite the instruction", "Below are instructions", "Here are instructions", "Improve the instruction")


class FakeLLM:
    def __init__(self, proposal: str = "Read the review carefully. Answer positive or negative.",
                 magic_word: str = "carefully", default_answer: str = "positive", fail_status: int | None = None,
                 latency_s: float = 0.0, faults: Faults | None = None, fail_when=None, cap: int | None = None,
                 keep_alive: bool = False):
        self.proposal = proposal
        self.magic_word = magic_word
        self.default_answer = default_answer
        self.fail_status = fail_status
        self.latency_s = latency_s  # simulated time per request (requests overlap)
        self.faults = faults
        self.fail_when = fail_when  # request -> fault kind (or None): a fault every time such a request comes
        self.faults_served: Counter = Counter()
        self.keep_alive = keep_alive  # HTTP/1.1: a client may send its next request on the same connection
        self.cap = cap  # chat requests in flight above this are refused with a 429 (and counted in `over_cap`)
        self.in_flight = 0
        self.peak = 0  # most chat requests in flight at once (refused ones included: what arrived)
        self.over_cap = 0
        self._bursts: list[str] = []
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.request_queue_size = 128
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def burst(self, kind: str, n: int) -> None:
        """Fail the next `n` requests with `kind` (429, 500, timeout, malformed)."""
        with self._lock:
            self._bursts.extend([kind] * n)

    def _fault_for(self, request: dict) -> str | None:
        with self._lock:
            if self.fail_when is not None and (kind := self.fail_when(request)):
                return kind
            if self._bursts:
                return self._bursts.pop(0)
            if self.faults is None or (self.faults.task_only and self.kind(request) != "task"):
                return None
            return self.faults.draw()

    def chat_requests(self, kind: str | None = None) -> list[dict]:
        reqs = [r for r in self.requests if "messages" in r]
        if kind is None:
            return reqs
        return [r for r in reqs if self.kind(r) == kind]

    @staticmethod
    def kind(request: dict) -> str:
        text = request["messages"][-1]["content"]
        return "proposer" if text.startswith(PROPOSER_MARKERS) else "task"

    def answer(self, request: dict) -> str:
        text = request["messages"][-1]["content"]
        conversation = "\n".join(f"{m['role']}: {m['content']}" for m in request["messages"])
        if self.kind(request) == "proposer":
            return self.proposal
        if text.startswith("You grade an answer"):  # the LLM judge: 5 when the answer matches the reference
            gold = text.split("Reference answer:", 1)[1].split("\n", 1)[0].strip().lower()
            reply = text.split("Answer to grade:", 1)[1].split("\n", 1)[0].strip().lower().rstrip(".")
            top = text.split(" (best)", 1)[0].rsplit(" ", 1)[-1]
            return f"Score: {top}" if reply == gold else "1"
        if (request.get("temperature") or 0) >= 1.0 and self.magic_word not in conversation:
            # sampling at temperature 1: answers vary from one request to the next (seeded, repeatable)
            self._samples = getattr(self, "_samples", 0) + 1
            label = "positive" if (self._samples * 7919) % 3 else "negative"
        elif self.magic_word in conversation:
            example = text.rsplit(":", 1)[-1].lower()
            label = "negative" if "bad" in example else "positive"
        else:
            label = self.default_answer
        if request.get("response_format"):
            return json.dumps({"label": label})
        return f"{label}."

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if fake.keep_alive else "HTTP/1.0"
            disable_nagle_algorithm = True  # head and body go out as written, not held for the client's ACK

            def log_message(self, *args):  # keep test output clean
                pass

            def _leave(self) -> None:
                """The request stops counting as in flight when its answer is ready (as a server frees its slot
                before the client has read the reply), once."""
                if not getattr(self, "_left", True):
                    self._left = True
                    with fake._lock:
                        fake.in_flight -= 1

            def _send(self, status: int, body: dict) -> None:
                self._leave()
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout fault)
                    pass

            def _fault(self, kind: str) -> None:
                if kind != "timeout":  # a hung request stays in flight until it answers
                    self._leave()
                if kind == "429":
                    wait = fake.faults.retry_after_s if fake.faults else 0.1
                    data = json.dumps({"error": {"message": "rate limited", "type": "rate_limit"}}).encode()
                    self.send_response(429)
                    self.send_header("Retry-After", f"{wait:g}")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                elif kind == "500":
                    self._send(500, {"error": {"message": "internal error", "type": "server_error"}})
                elif kind == "timeout":
                    time.sleep(fake.faults.hang_s if fake.faults else 3.0)
                    self._send(500, {"error": {"message": "too late", "type": "server_error"}})
                elif kind == "empty":  # a 200 that answers nothing, in one of three shapes
                    fake._empties = getattr(fake, "_empties", 0) + 1
                    shape = fake._empties % 3
                    choices = [] if shape == 0 else [{"index": 0, "finish_reason": "stop" if shape == 1 else "length",
                                                      "message": {"role": "assistant",
                                                                  "content": "" if shape == 1 else None}}]
                    self._send(200, {"id": "chatcmpl-empty", "object": "chat.completion", "created": 0,
                                     "model": "fake", "choices": choices,
                                     "usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1}})
                else:  # malformed: a 200 whose body is not JSON
                    data = b'{"id": "chatcmpl-broken", "choices": [{"message": '
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                self._left = False
                with fake._lock:
                    fake.in_flight += 1
                    fake.peak = max(fake.peak, fake.in_flight)
                    refuse = fake.cap is not None and fake.in_flight > fake.cap
                    fake.over_cap += refuse
                try:
                    if refuse:
                        self._fault("429")
                    else:
                        self._post(body)
                finally:
                    self._leave()

            def _post(self, body: bytes):
                request = json.loads(body)
                request["_authorization"] = self.headers.get("Authorization")
                with fake._lock:
                    fake.requests.append(request)
                if fake.latency_s:
                    time.sleep(fake.latency_s)
                if fake.fail_status:
                    self._send(fake.fail_status, {"error": {"message": "fake failure", "type": "server_error"}})
                    return
                fault = fake._fault_for(request)
                if fault:
                    with fake._lock:
                        fake.faults_served[fault] += 1
                    self._fault(fault)
                    return
                n = int(request.get("n") or 1)
                content = fake.answer(request)
                prompt_tokens = len(request["messages"][-1]["content"].split())
                self._send(200, {
                    "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": request.get("model"),
                    "choices": [{"index": i, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}} for i in range(n)],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content.split()),
                              "total_tokens": prompt_tokens + len(content.split())},
                })

        return Handler
