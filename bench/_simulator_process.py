"""`python -m bench._simulator_process`: the simulator with benchmark knobs, in a process of its own.

Prints its base URL on the first line of stdout, then serves until SIGTERM. The API key comes from
$SEEDANCE_SIMULATOR_API_KEY (never the command line). Results are a lazily generated body of --body-bytes,
so no task spends CPU rendering a video.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from typing import Any

import bench  # noqa: F401 - puts dev/ on sys.path


def _body_factory(size: int) -> Any:
    def factory(task: Any) -> tuple[int, Iterator[bytes]]:
        def chunks() -> Iterator[bytes]:
            block = b"\x00" * min(size, 256 * 1024)
            sent = 0
            while sent < size:
                piece = block[: min(len(block), size - sent)]
                sent += len(piece)
                yield piece

        return size, chunks()

    return factory


def main(argv: list[str] | None = None) -> int:
    from seedance_simulator import Knobs, SimulatorServer
    from seedance_simulator.server import interrupt_on_sigterm

    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--run-seconds", type=float, default=0.5)
    parser.add_argument("--max-running", type=int, default=100_000)
    parser.add_argument("--body-bytes", type=int, default=64 * 1024)
    parser.add_argument("--never-finish", action="store_true")
    args = parser.parse_args(argv)

    key = os.environ.get("SEEDANCE_SIMULATOR_API_KEY", "test-key")
    knobs = Knobs(
        api_key=key,
        latency_seconds=args.latency,
        run_seconds=args.run_seconds,
        max_running=args.max_running,
        never_finish=args.never_finish,
        video_body_factory=_body_factory(args.body_bytes),
    )
    server = SimulatorServer(knobs=knobs, host="127.0.0.1", port=0)

    interrupt_on_sigterm()
    print(server.base_url, flush=True)
    server.serve_until_interrupted()
    return 0


if __name__ == "__main__":
    sys.exit(main())
