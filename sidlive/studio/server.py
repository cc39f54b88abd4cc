"""Serving the studio with uvicorn: bind (127.0.0.1 unless told otherwise, with a warning),
say the URL, run until stopped, then stop the worker and close the library."""
from __future__ import annotations

import socket
import sys

import uvicorn

from sidlive.studio.app import build_app
from sidlive.studio.service import Studio

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


class StudioServer:
    """A Studio and its uvicorn server on a bound socket (port 0: any free port)."""

    def __init__(self, studio: Studio, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT):
        self.studio = studio
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.sock.close()
            raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e} (another studio there? pass --port)")
        self.sock.listen(128)       # connections wait in the backlog from now on: the printed URL works at once
        self.port = self.sock.getsockname()[1]
        app = build_app(studio, host=host, port=self.port)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                                    timeout_graceful_shutdown=2))

    @property
    def url(self) -> str:
        """The page's address."""
        h = "127.0.0.1" if self.host in ("0.0.0.0", "") else (f"[{self.host}]" if ":" in self.host else self.host)
        return f"http://{h}:{self.port}/"

    def run(self) -> None:
        """Serve until stopped (Ctrl-C, SIGTERM or `stop()`); then close the studio."""
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.studio.close()

    def stop(self) -> None:
        """Ask the server to stop (any thread)."""
        self.server.should_exit = True


def warn_if_exposed(host: str) -> None:
    """Say so when the studio listens beyond this machine."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"sidlive studio: warning: listening on {host}: anyone who can reach this address can use the "
              f"studio and its library (there is no login); bind to 127.0.0.1 unless the network is trusted",
              file=sys.stderr, flush=True)
