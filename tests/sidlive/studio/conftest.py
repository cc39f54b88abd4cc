"""Fixtures for the studio: a real server (uvicorn in a thread, port 0) over a library in a
temporary folder, the user's data folder pointed at a temporary one, HTTP helpers, a tiny
pointer model, test tunes (a two-subtune .sid made by the PSID exporter, a tune whose init
never returns), and Debian's Chromium driven by Playwright (skipped, with the reason, when absent).
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sidlive.c64.psid import build_psid
from sidlive.export.psidfile import export_frames
from sidlive.frames import load
from sidlive.paths import LOOPS_DIR

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def xdg(tmp_path_factory):
    """$XDG_DATA_HOME pointed at a temporary folder for the module (the user's loops go there)."""
    old = os.environ.get("XDG_DATA_HOME")
    d = tmp_path_factory.mktemp("xdg")
    os.environ["XDG_DATA_HOME"] = str(d)
    yield d
    if old is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = old


class Client:
    """JSON over HTTP to a studio at base (urllib: what any client would do)."""

    def __init__(self, base: str):
        self.base = base.rstrip("/")

    def call(self, method: str, path: str, body=None, raw: bytes | None = None, headers=None, timeout=60):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                payload, status, hdrs = r.read(), r.status, {k.lower(): v for k, v in r.headers.items()}
        except urllib.error.HTTPError as e:
            payload, status, hdrs = e.read(), e.code, {k.lower(): v for k, v in e.headers.items()}
        if "json" in hdrs.get("content-type", ""):
            return status, json.loads(payload)
        return status, (payload, hdrs)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body if body is not None else {}, **kw)

    def wait_take(self, take_id: int, timeout_s: float = 120, states=("done", "failed", "interrupted")) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            st, take = self.get(f"/api/takes/{take_id}")
            if st == 404 or take["status"] in states:
                return take
            time.sleep(0.05)
        raise AssertionError(f"take {take_id} not finished within {timeout_s} s: {take}")


class Running:
    """A StudioServer serving from a thread."""

    def __init__(self, library: Path, **kw):
        from sidlive.studio.server import StudioServer
        from sidlive.studio.service import Studio
        self.studio = Studio(library, **kw)
        self.server = StudioServer(self.studio, "127.0.0.1", 0)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = self.server.url
        self.client = Client(self.url)
        deadline = time.monotonic() + 30
        while not self.server.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.studio.model_ready.wait(300), "the model did not load"

    def stop(self):
        self.server.stop()
        self.thread.join(10)


@pytest.fixture(scope="module")
def running(tmp_path_factory, xdg):
    """A studio server on the shipped model, its library in a temporary folder."""
    pytest.importorskip("uvicorn")
    r = Running(tmp_path_factory.mktemp("library"), live_loops=tmp_path_factory.mktemp("live-loops"))
    yield r
    r.stop()


@pytest.fixture(scope="session")
def tunes(tmp_path_factory):
    """Test tunes: a two-subtune PSID exported from two shipped loops (subtune 2 the second), a tune whose
    init never returns, a PNG named .sid, an RSID, a truncated .regs."""
    d = tmp_path_factory.mktemp("tunes")
    a, b = load(LOOPS_DIR / "dojo.regs"), load(LOOPS_DIR / "everlasting.regs")
    export_frames([a, b], d / "two.sid", title="two loops", author="sidlive tests", warn=lambda m: None)
    # JMP $1000 at $1000: init never returns
    (d / "hang.sid").write_bytes(build_psid(bytes([0x4C, 0x00, 0x10, 0x60]), load_addr=0x1000, init_addr=0x1000,
                                            play_addr=0x1003, title="init never returns"))
    (d / "picture.sid").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (d / "rsid.sid").write_bytes(build_psid(bytes([0x60]), load_addr=0x1000, init_addr=0x1000, play_addr=0,
                                            magic=b"RSID", version=2))
    (d / "broken.regs").write_bytes(b"SLRG" + bytes(10))
    return {"two": d / "two.sid", "hang": d / "hang.sid", "picture": d / "picture.sid", "rsid": d / "rsid.sid",
            "broken": d / "broken.regs", "a": a, "b": b}


@pytest.fixture(scope="session")
def pointer_model(tmp_path_factory):
    """A tiny randomly initialised pointer model (.sidm): it has the repetition control."""
    from engine.config import ModelConfig
    from sidlive.measure.enginebench import random_model
    from tests.conftest import TINY
    path = tmp_path_factory.mktemp("models") / "tiny-pointer.sidm"
    return random_model(path, ModelConfig(**TINY, pointer=True), seed=3)


@pytest.fixture(scope="session")
def plain_model(tmp_path_factory):
    """A tiny randomly initialised model of the previous design: no repetition control."""
    from engine.config import ModelConfig
    from sidlive.measure.enginebench import random_model
    from tests.conftest import TINY
    path = tmp_path_factory.mktemp("models") / "tiny-plain.sidm"
    return random_model(path, ModelConfig(**TINY), seed=4)


@pytest.fixture(scope="session")
def shots(tmp_path_factory):
    """Where the page tests save their screenshots (also copied to $SIDLIVE_STUDIO_SHOTS when set)."""
    d = tmp_path_factory.mktemp("studio-shots")
    yield d
    target = os.environ.get("SIDLIVE_STUDIO_SHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for p in d.iterdir():
            shutil.copy(p, Path(target) / p.name)
    print(f"\nstudio screenshots: {d}")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A Playwright context on Debian's Chromium (headless, fresh profile)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip: playwright)")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is absent (Debian package chromium): the page tests need a real browser")
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path_factory.mktemp("chromium-profile")),
                                                   executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                                                   viewport={"width": 1400, "height": 900}, accept_downloads=True)
        try:
            yield ctx
        finally:
            ctx.close()
