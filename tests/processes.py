"""Real processes for tests: throwaway PostgreSQL and Redis instances on free ports, and the
PushApp server run as users run it. Never touches the machine's shared services."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5),
        ):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def http_get(url: str, *, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for_http(
    url: str, *, timeout: float = 60.0, process: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with contextlib.suppress(OSError):
            status, _ = http_get(url, timeout=2)
            if status < 500 or status == 503:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"PostgreSQL's {name} is not installed")
    return path


def _as_postgres(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; CI and sessions run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    directory = tempfile.mkdtemp(prefix="pushapp-pg-")
    os.chmod(directory, 0o777)
    data = os.path.join(directory, "data")
    port = free_port()
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres")
    subprocess.run(
        _as_postgres(
            [_pg_bin("initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    instance = ThrowawayPostgres(data=data, port=port, socket_dir=directory)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(directory, ignore_errors=True)


class ThrowawayPostgres:
    def __init__(self, *, data: str, port: int, socket_dir: str) -> None:
        self.data, self.port, self.socket_dir = data, port, socket_dir

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = os.path.join(self.socket_dir, "postgres.log")
        # -l: the server's output goes to a file, not to our pipe (which would never close).
        subprocess.run(
            _as_postgres(
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    self.data,
                    "-l",
                    log,
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=90,
        )

    def stop(self) -> None:
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )


@contextlib.contextmanager
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    instance = ThrowawayRedis(port=free_port())
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


class ThrowawayRedis:
    def __init__(self, *, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def server_env(**overrides: str) -> dict[str, str]:
    """The environment of the test run, for a child PushApp process."""
    env = dict(os.environ)
    env.update(overrides)
    env.setdefault("DJANGO_SETTINGS_MODULE", "pushapp.settings")
    return env


@contextlib.contextmanager
def running_server(
    env: dict[str, str], *, workers: int = 1, port: int | None = None
) -> Iterator[str]:
    """gunicorn serving PushApp with ``env``; yields its base URL."""
    port = port or free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "pushapp.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("PUSHAPP_SERVER_LOG", os.devnull), "ab"),  # noqa: SIM115
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/healthz", process=process)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@contextlib.contextmanager
def celery_process(
    env: dict[str, str], *, beat: bool = False, concurrency: int = 2
) -> Iterator[CeleryProcess]:
    """A real Celery worker (or beat) on ``env``'s broker; stopped (SIGKILL) on exit."""
    process = CeleryProcess(env, beat=beat, concurrency=concurrency)
    process.start()
    try:
        yield process
    finally:
        process.kill()


class CeleryProcess:
    def __init__(self, env: dict[str, str], *, beat: bool, concurrency: int) -> None:
        self.env, self.beat, self.concurrency = env, beat, concurrency
        self.directory = tempfile.mkdtemp(prefix="pushapp-celery-")
        self.log_path = os.path.join(self.directory, "celery.log")
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout: float = 60.0) -> None:
        if self.beat:
            args = [
                "beat",
                "--schedule",
                os.path.join(self.directory, "beat-schedule"),
                "--loglevel=INFO",
            ]
            ready_marker = "beat: Starting"
        else:
            args = [
                "worker",
                f"--concurrency={self.concurrency}",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                f"--hostname=test-{free_port()}@%h",
            ]
            ready_marker = "ready."
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child owns it)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "pushapp", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"celery exited early:\n{self.log()}")
            if ready_marker in self.log():
                return
            time.sleep(0.2)
        raise TimeoutError(f"celery not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def kill(self) -> None:
        """SIGKILL the whole process group: no graceful shutdown, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)
        self.process = None


def database_url_for_children() -> str:
    """The URL of the suite's test database, for child processes (committed data only)."""
    from django.db import connection

    settings_dict = connection.settings_dict
    user = settings_dict.get("USER") or "postgres"
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or "5432"
    return f"postgres://{user}@{host}:{port}/{settings_dict['NAME']}"
