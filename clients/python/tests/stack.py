"""Starts the real kyro-server and kyro-gateway binaries for the tests, as
``api-gateway/tests/common/mod.rs`` does: a temp data dir, ephemeral ports
(or given ones), a configuration with SHA-256 hashed keys, and the ``ready``
and ``listening:`` lines on stdout."""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[3]

SERVICE_KEY = "kyro_sk_python_tests_gateway_service_key"
"""The gateway's kyro-server key (scopes read, write, service)."""


@dataclass(frozen=True)
class TestKey:
    name: str
    tenant: str
    scopes: Sequence[str]
    key: str


ADMIN = TestKey("admin", "ops", ("read", "write", "admin"), "kyro_sk_python_tests_admin")
ALICE = TestKey("alice", "acme", ("read", "write"), "kyro_sk_python_tests_alice")
ALICE_READER = TestKey("alice-ro", "acme", ("read",), "kyro_sk_python_tests_alice_ro")
BOB = TestKey("bob", "globex", ("read", "write"), "kyro_sk_python_tests_bob")
GATEWAY = TestKey("gateway", "gateway", ("read", "write", "service"), SERVICE_KEY)
KEYS = (ADMIN, ALICE, ALICE_READER, BOB, GATEWAY)

READY_TIMEOUT = 180.0
"""Seconds a process may take to print ``ready`` (debug builds load the
embedding model slowly)."""


def binary(name: str, env_var: str) -> Path:
    """A binary: ``$<env_var>``, else ``${CARGO_TARGET_DIR:-<repo>/target}/debug/<name>``."""
    if os.environ.get(env_var):
        path = Path(os.environ[env_var])
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
        if not target.is_absolute():
            target = REPO / target
        path = target / "debug" / name
    if not path.is_file():
        raise FileNotFoundError(f"{name} not found at {path} (run `cargo build --workspace`, or set {env_var})")
    return path


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(path: Path) -> Path:
    """The kyro-server configuration with the test keys (hashed)."""
    lines: List[str] = []
    for key in KEYS:
        scopes = ", ".join(f'"{s}"' for s in key.scopes)
        digest = hashlib.sha256(key.key.encode()).hexdigest()
        lines += [
            "[[auth.keys]]",
            f'name = "{key.name}"',
            f'tenant = "{key.tenant}"',
            f"scopes = [{scopes}]",
            f'sha256 = "{digest}"',
            "",
        ]
    path.write_text("\n".join(lines))
    return path


class _Process:
    """A child process whose stdout lines are collected by a thread."""

    def __init__(self, args: Sequence[str], env: Dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "ab") as stderr:
            self.child = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                text=True,
            )
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.child.stdout is not None
        for line in self.child.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def until_ready(self, what: str) -> List[str]:
        """The lines printed before ``ready``; raises if it never comes."""
        deadline = time.monotonic() + READY_TIMEOUT
        seen: List[str] = []
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line == "ready":
                return seen
            if line is None:
                self.kill()
                tail = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
                raise RuntimeError(
                    f"{what} did not become ready (exit status {self.child.poll()}); "
                    f"printed {seen}; log tail:\n{tail}"
                )
            seen.append(line)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within 60 s."""
        if self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
            try:
                self.child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        self.child.wait()

    def kill(self) -> None:
        if self.child.poll() is None:
            self.child.kill()
        self.child.wait()


def _env(extra: Dict[str, str]) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


class Engine:
    """A running kyro-server (``text`` 384-dim and ``image`` 512-dim instances)."""

    def __init__(self, directory: Path, text: str = "127.0.0.1:0", image: str = "127.0.0.1:0") -> None:
        self.directory = directory
        self.text_listen = text
        self.image_listen = image
        self.config = write_config(directory / "kyro.toml")
        self.text = ""
        self.image = ""
        self._process: Optional[_Process] = None

    def start(self) -> "Engine":
        args = [
            str(binary("kyro-server", "KYRO_SERVER_BIN")),
            "--config", str(self.config),
            "--data-dir", str(self.directory / "engine"),
            "--listen", f"text={self.text_listen}",
            "--listen", f"image={self.image_listen}",
            "--http-listen", "127.0.0.1:0",
        ]  # fmt: skip
        self._process = _Process(args, _env({"RUST_LOG": "warn"}), self.directory / "kyro-server.log")
        for line in self._process.until_ready("kyro-server"):
            parts = line.split()
            if len(parts) == 4 and parts[0] == "listening:" and parts[2] == "grpc":
                if parts[1] == "text":
                    self.text = parts[3]
                elif parts[1] == "image":
                    self.image = parts[3]
        if not self.text or not self.image:
            raise RuntimeError("kyro-server printed no listening lines for text and image")
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None


class Gateway:
    """A running kyro-gateway against an :class:`Engine`."""

    def __init__(self, directory: Path, engine: Engine, settings: Sequence[str] = (), listen: str = "127.0.0.1:0") -> None:
        self.directory = directory
        self.engine = engine
        self.settings = list(settings)
        self.listen = listen
        self.url = ""
        self.admin_key = ""
        self._process: Optional[_Process] = None

    def start(self) -> "Gateway":
        args = [
            str(binary("kyro-gateway", "KYRO_GATEWAY_BIN")),
            "--data-dir", str(self.directory / "gateway"),
            "--listen", self.listen,
            "--engine-text", f"http://{self.engine.text}",
            "--engine-image", f"http://{self.engine.image}",
            "--set", "engine.timeout_ms=3000",
        ]  # fmt: skip
        for setting in self.settings:
            args += ["--set", setting]
        env = _env({"KYRO_GATEWAY_SERVICE_KEY": SERVICE_KEY, "RUST_LOG": "info"})
        self._process = _Process(args, env, self.directory / "kyro-gateway.log")
        for line in self._process.until_ready("kyro-gateway"):
            if line.startswith("admin key (shown once, stored hashed): "):
                self.admin_key = line.split(": ", 1)[1]
            if line.startswith("listening: http "):
                self.url = "http://" + line[len("listening: http ") :]
        if not self.url:
            raise RuntimeError("kyro-gateway printed no listening line")
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
