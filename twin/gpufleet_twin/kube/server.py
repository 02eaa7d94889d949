"""Run the emulated API server: in a background thread for tests, or in the foreground as a process.

    with ApiServer(state_dir=tmp_path) as api:   # binds 127.0.0.1 on an ephemeral port
        api.url                 # http://127.0.0.1:PORT
        api.kubeconfig_path     # tmp_path / "kubeconfig", token included
        api.cluster.add_node("gpu-node-0")

It serves HTTPS with a throwaway CA (see ``tls.py`` for why plain HTTP is not enough); the kubeconfig
carries the CA as ``certificate-authority-data`` and the bearer token, so every client that reads a
kubeconfig just works. ``tls=False`` serves plain HTTP (useful only with ``require_auth=False``).
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

import aiohttp.web
import yaml

from .cluster import Cluster
from .http import KubeApiHandler
from .tls import ServingCertificate, load_or_generate

CONTEXT_NAME = "gpufleet-twin"
USER_NAME = "gpufleet-twin-admin"


def kubeconfig_document(url: str, token: str | None, ca_pem: bytes | None = None, namespace: str = "default") -> dict[str, Any]:
    user: dict[str, Any] = {"token": token} if token else {}
    cluster: dict[str, Any] = {"server": url}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT_NAME, "cluster": cluster}],
        "users": [{"name": USER_NAME, "user": user}],
        "contexts": [{"name": CONTEXT_NAME, "context": {"cluster": CONTEXT_NAME, "user": USER_NAME, "namespace": namespace}}],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }


def _write_private(path: Path, text: str) -> None:
    """Write atomically with mode 0600: the kubeconfig holds a token, and readers must never see half a file."""
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(partial, path)


class ApiServer:
    """The emulated API server bound to ``host:port`` (0 = ephemeral), serving ``cluster``.

    ``token``: the bearer token clients must present; generated when not given (or reused from
    ``state_dir/token``), ``require_auth=False`` turns authentication off. With ``state_dir`` the
    kubeconfig is written to ``state_dir/kubeconfig`` once the port is known; with ``port_file`` the
    port number is written there (and removed when the server stops).
    """

    def __init__(
        self,
        cluster: Cluster | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        require_auth: bool = True,
        state_dir: str | os.PathLike[str] | None = None,
        port_file: str | os.PathLike[str] | None = None,
        tls: bool = True,
    ) -> None:
        self.cluster = cluster if cluster is not None else Cluster()
        self.host = host
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.port_file = Path(port_file) if port_file is not None else None
        if require_auth and token is None:
            token = self._stored_token() or secrets.token_urlsafe(32)
        self.token = token if require_auth else None
        self.handler = KubeApiHandler(cluster=self.cluster, token=self.token)
        self._requested_port = port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self.certificate: ServingCertificate | None = load_or_generate(self.state_dir, host) if tls else None
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    def _stored_token(self) -> str | None:
        if self.state_dir is None:
            return None
        token_file = self.state_dir / "token"
        return token_file.read_text().strip() if token_file.exists() else None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the API server is not running")
        return self._port

    @property
    def url(self) -> str:
        scheme = "https" if self.certificate else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def ca_path(self) -> Path | None:
        """The CA certificate file, for clients configured without a kubeconfig."""
        if self.certificate is None:
            return None
        return self._certificate_dir() / "ca.crt"

    def _certificate_dir(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="gpufleet-kube-")
        return Path(self._scratch.name)

    def _ssl_context(self) -> ssl.SSLContext | None:
        return self.certificate.ssl_context(self._certificate_dir()) if self.certificate else None

    @property
    def kubeconfig_path(self) -> Path:
        if self.state_dir is None:
            raise RuntimeError("no state_dir was given, so no kubeconfig was written; use write_kubeconfig(path)")
        return self.state_dir / "kubeconfig"

    def write_kubeconfig(self, path: str | os.PathLike[str]) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        ca_pem = self.certificate.ca_pem if self.certificate else None
        _write_private(target, yaml.safe_dump(kubeconfig_document(self.url, self.token, ca_pem), sort_keys=False))
        return target

    # ------------------------------------------------------------------ lifecycle

    async def _run(self, stop: asyncio.Event) -> None:
        async with self.handler:
            server = aiohttp.web.Server(self.handler, handler_cancellation=True)
            # A short shutdown timeout: open watches would otherwise hold stop() for a minute.
            runner = aiohttp.web.ServerRunner(server, handle_signals=False, shutdown_timeout=0.5)
            await runner.setup()
            try:
                site = aiohttp.web.TCPSite(
                    runner, self.host, self._requested_port, reuse_address=True, ssl_context=self._ssl_context()
                )
                await site.start()
                self._port = runner.addresses[0][1]
                self._on_bound()
                self._started.set()
                await stop.wait()
            finally:
                if self.port_file is not None and self._port is not None:
                    self.port_file.unlink(missing_ok=True)
                await runner.cleanup()

    def _on_bound(self) -> None:
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            if self.token is not None:
                _write_private(self.state_dir / "token", self.token + "\n")
            self.write_kubeconfig(self.state_dir / "kubeconfig")
        if self.port_file is not None:
            self.port_file.parent.mkdir(parents=True, exist_ok=True)
            _write_private(self.port_file, f"{self._port}\n")

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._stop = asyncio.Event()
        try:
            loop.run_until_complete(self._run(self._stop))
        except BaseException as exc:  # surfaced by start()
            self._failure = exc
            self._started.set()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def start(self, timeout: float = 10.0) -> ApiServer:
        """Serve from a daemon thread; returns once the port is bound and the kubeconfig written."""
        if self._thread is not None:
            raise RuntimeError("the API server was already started")
        self._thread = threading.Thread(target=self._thread_main, name="gpufleet-kube-apiserver", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"the API server did not start within {timeout} s")
        if self._failure is not None:
            raise RuntimeError(f"the API server failed to start: {self._failure}") from self._failure
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop stopped in between
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        self._thread = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def serve_forever(self, stop: asyncio.Event | None = None) -> None:
        """Serve in the calling thread until SIGINT/SIGTERM (used by ``python -m gpufleet_twin.kube serve``)."""
        import signal

        async def main() -> None:
            stop_event = stop or asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop_event.set)
            await self._run(stop_event)

        asyncio.run(main())


def save_snapshot(cluster: Cluster, path: Path) -> None:
    _write_private(path, json.dumps(cluster.snapshot()))


def load_snapshot(cluster: Cluster, path: Path) -> bool:
    if not path.exists():
        return False
    cluster.restore(json.loads(path.read_text()))
    return True
