"""Serve a GGUF model OpenAI-compatibly with llama.cpp's own server (xllamacpp).

    python -m promptyard.runtime.llm_server --model PATH --port 8089 --slots 4 --slot-context 2048

The context is split across slots, so the server gets slots × slot-context tokens in all.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="path of the .gguf file")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slots", type=int, default=4, help="requests served in parallel")
    parser.add_argument("--slot-context", type=int, default=2048, help="context tokens per request")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)

    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.port = args.port
    params.hostnames = ["127.0.0.1"]
    params.n_parallel = args.slots
    params.n_ctx = args.slots * args.slot_context
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    server = xllamacpp.Server(params)  # serves from background threads
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"serving {args.model} on http://127.0.0.1:{args.port}/v1", flush=True)
    while not stop.wait(0.5):  # a signal may land on one of the server's native threads, which leaves a
        pass                   # wait with no timeout asleep: waking twice a second lets the handler run
    del server


if __name__ == "__main__":
    main()
