"""`python -m seedance_simulator --port 8787 --api-key KEY`: serve the simulator until interrupted."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .knobs import Knobs
from .server import SimulatorServer, interrupt_on_sigterm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seedance_simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port to bind; 0 picks a free one (default 8787)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("SEEDANCE_SIMULATOR_API_KEY", "test-key"),
        help="the Bearer key to accept (default: $SEEDANCE_SIMULATOR_API_KEY or 'test-key')",
    )
    parser.add_argument("--run-seconds", type=float, default=Knobs.run_seconds, help="time a task spends IN_PROGRESS")
    parser.add_argument("--queue-seconds", type=float, default=Knobs.queue_seconds, help="time a task spends QUEUED")
    parser.add_argument("--max-running", type=int, default=Knobs.max_running, help="tasks IN_PROGRESS at once")
    parser.add_argument("--max-queued", type=int, default=None, help="waiting tasks before 429 QuotaExceeded")
    parser.add_argument(
        "--execution-expiry-scale",
        type=float,
        default=Knobs.execution_expiry_scale,
        help="simulator seconds per second of an Ark task's execution_expires_after",
    )
    parser.add_argument(
        "--flex-multiplier", type=float, default=Knobs.flex_multiplier, help="how much longer a flex task takes"
    )
    parser.add_argument(
        "--unified-callback-field",
        default=Knobs.unified_callback_field,
        help="the gateway body field that carries a callback URL ('' for none; Ark always uses callback_url)",
    )
    parser.add_argument("--work-dir", default=None, help="where renders are kept (default: a temporary directory)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request line")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s")
    knobs = Knobs(
        api_key=args.api_key,
        run_seconds=args.run_seconds,
        queue_seconds=args.queue_seconds,
        max_running=args.max_running,
        max_queued=args.max_queued,
        execution_expiry_scale=args.execution_expiry_scale,
        flex_multiplier=args.flex_multiplier,
        unified_callback_field=args.unified_callback_field,
    )
    server = SimulatorServer(knobs=knobs, host=args.host, port=args.port, work_dir=args.work_dir)

    interrupt_on_sigterm()
    # The key is deliberately not printed.
    print(f"Seedance simulator listening on {server.base_url}", flush=True)
    print(f"Native Ark dialect at {server.ark_base_url}", flush=True)
    server.serve_until_interrupted()
    return 0


if __name__ == "__main__":
    sys.exit(main())
