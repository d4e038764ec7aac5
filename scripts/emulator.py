"""Start, check and stop the local AWS emulator (ministack) that this project runs on.

    python scripts/emulator.py start [--port N]   # reuse one already answering, else start ours
    python scripts/emulator.py stop  [--port N]   # stop only the one we started (recorded PID)
    python scripts/emulator.py port               # the port `make up` last used (else 4566)
    python scripts/emulator.py free-port          # print a free TCP port on 127.0.0.1

The emulator runs Lambda handlers in worker processes of its own interpreter, so it is started from
an environment of its own, `.venv-emulator` (Python 3.13 with ministack, boto3 and botocore, as lean as
Lambda's runtime; requirements-emulator.in says why). Its PID and log live in `.emulator/`, and so does
`current-port`: the port `make up` last deployed to, which `make env`, `make down` and the demo use
when EMULATOR_PORT is not given (`stop` removes it with the emulator it names).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".emulator"
# `make emulator-venv` creates it (every target that starts the emulator depends on it).
EMULATOR_BIN = ROOT / ".venv-emulator" / "bin"
CURRENT_PORT_FILE = STATE_DIR / "current-port"
HEALTH_DEADLINE_SECONDS = 60

# Bounded Lambda workers. The emulator starts one worker process (about 57 MB and 0.8 CPU-seconds to
# start) per *concurrent* call of a function, with no per-function cap; its only bound is the account
# pool, which by default is memory / 21 MiB (16-1000): the benchmark's 50-client step left 154 workers
# and 12.8 GB resident. Set both knobs here, deliberately, instead of inheriting that default:
# - LAMBDA_ACCOUNT_CONCURRENCY: calls in flight across all functions. Over it a call is throttled
#   (TooManyRequestsException), as on AWS. What bounds most functions' workers is their own reserved
#   concurrency, set when the stack is deployed (scripts/stack.py, LOCAL_RESERVED_CONCURRENCY: 36 slots
#   for the stack's 14 bounded functions). The pool is 14 above that, room for the calls of the two
#   unbounded ones (the hooks' deliveries and the reconciler, which the emulator drops when throttled),
#   so that neither they nor EnrollmentApi's calls, each waiting for a whole workflow, take the slots of
#   the steps.
# - LAMBDA_WARM_TTL_SECONDS: idle seconds before a surplus worker (beyond the first of each function,
#   which is never reaped) is stopped. 60 instead of the default 300 gives a burst's memory back soon
#   after it ends, while a steady run keeps its workers.
# The caller's environment overrides both (e.g. `LAMBDA_ACCOUNT_CONCURRENCY=50 make up`).
LAMBDA_ACCOUNT_CONCURRENCY = 50
LAMBDA_WARM_TTL_SECONDS = 60
# The EventBridge Scheduler's sweep (scripts/emulator_main.py): a hook fires at most this late. The
# emulator's own 10 s is more than three of samconfig `local`'s 3-second offset days; 1 s is a third of
# one, as AWS's minute is a small part of a real day. The caller's environment overrides it.
SCHEDULER_TICK_SECONDS = 1
# Started with the emulator's interpreter: ministack with the sweep above.
EMULATOR_MAIN = ROOT / "scripts" / "emulator_main.py"


def scheduler_tick_seconds() -> float:
    """How often the emulator's Scheduler sweeps: SCHEDULER_TICK_SECONDS from the caller, else 1."""
    return float(os.environ.get("SCHEDULER_TICK_SECONDS", SCHEDULER_TICK_SECONDS))


def recorded_port() -> int | None:
    """The port `make up` recorded in .emulator/current-port, or None."""
    try:
        text = CURRENT_PORT_FILE.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isascii() and text.isdigit() and 0 < int(text) < 65536 else None


def record_port(port: int) -> None:
    """Remember `port` as the one `make up` deployed to (read by `make env`, `make down`, the demo)."""
    STATE_DIR.mkdir(exist_ok=True)
    CURRENT_PORT_FILE.write_text(f"{port}\n")


def forget_recorded_port(port: int) -> None:
    """Drop the record when it names `port` (an emulator on another port keeps its record)."""
    if recorded_port() == port:
        CURRENT_PORT_FILE.unlink(missing_ok=True)


def default_port() -> int:
    """EMULATOR_PORT when set, else the port `make up` recorded, else 4566."""
    if os.environ.get("EMULATOR_PORT", "").strip():
        return int(os.environ["EMULATOR_PORT"])
    return recorded_port() or 4566


DEFAULT_PORT = default_port()


def endpoint(port: int) -> str:
    return f"http://localhost:{port}"


def pid_file(port: int) -> Path:
    return STATE_DIR / f"ministack-{port}.pid"


def log_file(port: int) -> Path:
    return STATE_DIR / f"ministack-{port}.log"


def temp_dir(port: int) -> Path:
    """The emulator's TMPDIR. It unpacks code and layers for every Lambda worker it starts (tens of
    MB each) and does not always remove them, so each emulator of ours gets a directory of its own
    that is deleted when we stop it."""
    return STATE_DIR / f"tmp-{port}"


def health(port: int) -> dict | None:
    """The emulator's health document, or None when nothing answers on `port`."""
    try:
        with urllib.request.urlopen(f"{endpoint(port)}/_localstack/health", timeout=1) as response:  # noqa: S310 - http only
            document = json.load(response)
    except (OSError, ValueError):
        return None
    return document if response.status == 200 and "services" in document else None


def is_healthy(port: int) -> bool:
    return health(port) is not None


def iam_enforcement(port: int) -> str:
    """`enabled` when the emulator on `port` evaluates IAM (AUTH=true), else `disabled`."""
    return (health(port) or {}).get("auth", "disabled")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def emulator_environment(port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("AWS_ENDPOINT_URL", None)
    env.update(
        {
            "GATEWAY_PORT": str(port),
            "BIND_HOST": "127.0.0.1",
            "MINISTACK_REGION": "us-east-1",
            "LOG_LEVEL": os.environ.get("EMULATOR_LOG_LEVEL", "WARNING"),
            "TMPDIR": str(temp_dir(port)),
            "LAMBDA_ACCOUNT_CONCURRENCY": os.environ.get("LAMBDA_ACCOUNT_CONCURRENCY", str(LAMBDA_ACCOUNT_CONCURRENCY)),
            "LAMBDA_WARM_TTL_SECONDS": os.environ.get("LAMBDA_WARM_TTL_SECONDS", str(LAMBDA_WARM_TTL_SECONDS)),
            "SCHEDULER_TICK_SECONDS": str(scheduler_tick_seconds()),
            # IAM is enforced: every request is SigV4-checked and evaluated against the caller's
            # policies, and each Lambda runs with its execution role's credentials. The dummy key
            # `test` is the account root, so deploys and the tests' own calls are still allowed.
            "AUTH": "true",
            # Workers import handler code with the emulator's interpreter: keep it the emulator venv's.
            "PATH": f"{EMULATOR_BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.update(extra or {})
    return env


def start(port: int, extra_env: dict[str, str] | None = None) -> subprocess.Popen | None:
    """Start an emulator on `port` and wait until healthy. Returns None when one already answers."""
    if is_healthy(port):
        print(f"emulator already answering on {endpoint(port)}: reusing it (IAM enforcement {iam_enforcement(port)})")
        return None
    STATE_DIR.mkdir(exist_ok=True)
    shutil.rmtree(temp_dir(port), ignore_errors=True)  # left by an emulator that was killed
    temp_dir(port).mkdir()
    installed = EMULATOR_BIN / "ministack"
    if not installed.exists():
        raise FileNotFoundError(f"{installed} not found: run `make emulator-venv` (it installs the emulator)")
    with log_file(port).open("ab") as log:
        process = subprocess.Popen(
            [str(EMULATOR_BIN / "python"), str(EMULATOR_MAIN)],
            cwd=STATE_DIR,
            env=emulator_environment(port, extra_env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its Lambda workers too
        )
    pid_file(port).write_text(str(process.pid))
    deadline = time.monotonic() + HEALTH_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            forget(port)
            raise RuntimeError(f"emulator exited with {process.returncode}; see {log_file(port)}")
        if is_healthy(port):
            print(
                f"emulator started on {endpoint(port)} (pid {process.pid}, log {log_file(port)},"
                f" IAM enforcement {iam_enforcement(port)})"
            )
            return process
        time.sleep(0.1)
    stop_pid(process.pid)
    forget(port)
    raise TimeoutError(f"emulator not healthy within {HEALTH_DEADLINE_SECONDS}s; see {log_file(port)}")


def stop_pid(pid: int, grace_seconds: float = 5.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        _reap(pid)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def forget(port: int) -> None:
    """Remove what an emulator of ours on `port` left behind: its PID file and its TMPDIR."""
    pid_file(port).unlink(missing_ok=True)
    shutil.rmtree(temp_dir(port), ignore_errors=True)


def stop(port: int) -> bool:
    forget_recorded_port(port)
    path = pid_file(port)
    if not path.exists():
        print(f"no emulator started by this project on port {port}")
        shutil.rmtree(temp_dir(port), ignore_errors=True)
        return False
    pid = int(path.read_text())
    stop_pid(pid)
    forget(port)
    print(f"emulator (pid {pid}) on port {port} stopped")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "stop", "status", "port", "free-port"])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    if args.command == "start":
        start(args.port)
    elif args.command == "stop":
        stop(args.port)
    elif args.command == "port":
        print(args.port)
    elif args.command == "status":
        print(f"healthy, IAM enforcement {iam_enforcement(args.port)}" if is_healthy(args.port) else "not answering")
    else:
        print(free_port())


if __name__ == "__main__":
    main()
