"""The studio's HTTP side (Starlette): the page, its static files and a JSON API.

Anything that runs the engine, the emulator, reSID or the .sid exporter goes through the
thread pool (`run_in_threadpool`), so the event loop only moves bytes: the page stays
responsive while a take is made. Errors come back as {"error": message} with 400 (bad
input), 404 (no such take/source), 413 (upload too large) or 500.

Requests from other web sites are refused: the Host header must name this server, and a
request that changes something must come from its own page (Origin, when the browser sends it).
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sidlive.studio.instrument import InstrumentError
from sidlive.studio.library import NotFound
from sidlive.studio.models import ModelError
from sidlive.studio.service import EXPORT_FORMATS, Studio, StudioError, field
from sidlive.studio.sources import SourceError, UploadTooLarge, check_size, upload_ext
from sidlive.studio.stream import read_wav_range

STATIC_DIR = Path(__file__).resolve().parent / "static"
POLL_S = 1.5                   # a long poll answers at once on a change, else after this
AUDIO_WAIT_S = 1.0
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")
DRAIN_MAX_BYTES = 64 << 20     # an upload over its limit is read and dropped up to this, so the 413 arrives


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _call(fn, *args, **kwargs):
    """Run a blocking studio call in the thread pool; errors become JSON responses."""
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except UploadTooLarge as e:
        return _error(413, str(e))
    except NotFound as e:
        return _error(404, str(e).strip("'\""))
    except (StudioError, SourceError, ModelError, InstrumentError, ValueError, RuntimeError) as e:
        return _error(400, str(e))


async def _json(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise StudioError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise StudioError("the request body must be a JSON object")
    return body


def _reply(value) -> Response:
    return value if isinstance(value, Response) else JSONResponse(value)


def build_app(studio: Studio, *, host: str = "127.0.0.1", port: int = 8765) -> Starlette:
    """The Starlette app over a Studio."""
    allowed_hosts = {f"{h}:{port}" for h in (*LOCAL_NAMES, host)} | {host, *LOCAL_NAMES}

    async def index(request: Request):
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def state(request: Request):
        return _reply(await _call(studio.state))

    async def poll(request: Request):
        since = int(request.query_params.get("since", "-1"))
        deadline = time.monotonic() + POLL_S
        while studio.worker.version == since and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return JSONResponse({"version": studio.worker.version, "jobs": studio.worker.active(),
                             "model_loading": not studio.model_ready.is_set()})

    async def model(request: Request):
        body = await _json(request)
        return _reply(await _call(studio.select_model, str(body.get("path", ""))))

    async def sources(request: Request):
        return _reply(await _call(studio.sources.listing))

    async def upload(request: Request):
        name = request.query_params.get("name", "")
        try:
            upload_ext(name)
            declared = int(request.headers.get("content-length", "0") or 0)
            if declared > DRAIN_MAX_BYTES:
                check_size(name, declared)
            chunks, size, refused = [], 0, None
            async for chunk in request.stream():
                size += len(chunk)
                if refused is None:
                    try:
                        check_size(name, size)
                        chunks.append(chunk)
                    except UploadTooLarge as e:
                        refused, chunks = e, []     # read on (and drop) so the browser gets the answer
                if size > DRAIN_MAX_BYTES:
                    break
            if refused is not None:
                raise refused
        except UploadTooLarge as e:
            return _error(413, str(e))
        except SourceError as e:
            return _error(400, str(e))
        return _reply(await _call(studio.sources.add_upload, Path(name).name, b"".join(chunks)))

    async def source_roll(request: Request):
        q = request.query_params
        sub = q.get("subtune")
        return _reply(await _call(studio.source_roll, q.get("key", ""), int(sub) if sub else None))

    async def preview(request: Request):
        return _reply(await _call(studio.preview, await _json(request)))

    async def audio(request: Request):
        key = request.path_params["key"]
        start = int(request.query_params.get("from", "0"))
        stream = None
        if key.startswith("take-") and key[5:].isdigit():
            tid = int(key[5:])
            job = studio.worker.jobs.get(tid)
            deadline = time.monotonic() + AUDIO_WAIT_S
            while job is not None and job.state == "queued" and time.monotonic() < deadline:
                await asyncio.sleep(0.05)            # its turn has not come: nothing to play yet
            stream = studio.worker.stream_for(tid)
            if stream is None and job is not None and job.state in ("queued", "running"):
                return _pcm(b"", {"ready": 0, "total": 0, "rate": 48_000, "done": False, "error": ""})
            if stream is None:
                got = await _call(lambda: read_wav_range(studio.library.wav_path(tid), start))
                if isinstance(got, Response):
                    return got
                data, info = got
                return _pcm(data, info)
        elif key.startswith("p"):
            stream = studio.worker.preview_stream(key)
        if stream is None:
            return _error(404, f"no audio {key!r} (previews are kept for a while only)")
        await run_in_threadpool(stream.wait, start, AUDIO_WAIT_S)
        data, info = stream.read(start)
        return _pcm(data, info)

    async def takes(request: Request):
        if request.method == "POST":
            return _reply(await _call(studio.make_takes, await _json(request)))
        q = request.query_params
        starred = {"1": True, "0": False}.get(q.get("starred", ""))
        seed = q.get("seed") or None

        def listing():
            return studio.library.takes(composer=q.get("composer") or None, starred=starred,
                                        seed=field({"seed": int(seed)}, "seed", int, 0, None) if seed else None,
                                        text=q.get("q") or None)
        if seed is not None and not seed.isdigit():
            return _error(400, f"field seed: {seed!r} is not a whole number")
        return _reply(await _call(listing))

    async def take(request: Request):
        tid = request.path_params["id"]
        if request.method == "GET":
            return _reply(await _call(studio.library.take, tid))
        if request.method == "DELETE":
            def delete():
                if not studio.worker.cancel(int(tid)):
                    studio.library.delete_take(tid)
                studio.worker.changed()
                return {"deleted": int(tid)}
            return _reply(await _call(delete))
        body = await _json(request)

        def update():
            starred = body.get("starred")
            if starred is not None and not isinstance(starred, bool):
                raise StudioError(f"field starred: {starred!r} is not true or false")
            rec = studio.library.update_take(tid, name=body.get("name"), starred=starred)
            studio.worker.changed()
            return rec
        return _reply(await _call(update))

    async def take_roll(request: Request):
        start = int(request.query_params.get("from", "0"))
        return _reply(await _call(studio.take_roll, int(request.path_params["id"]), start))

    async def verify(request: Request):
        return _reply(await _call(studio.verify, int(request.path_params["id"])))

    async def export(request: Request):
        fmt = request.path_params["fmt"]
        got = await _call(studio.export, int(request.path_params["id"]), fmt)
        if isinstance(got, Response):
            return got
        data, name = got
        return Response(data, media_type=EXPORT_FORMATS[fmt],
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def live_target(request: Request):
        body = await _json(request)

        def retarget():
            studio.instrument.retarget(body.get("host", ""), body.get("port"))
            return studio.instrument.info()
        return _reply(await _call(retarget))

    async def live_control(request: Request):
        body = await _json(request)
        if "unit" in body:
            return _reply(await _call(studio.instrument.send_unit, body.get("name"), body.get("unit")))
        return _reply(await _call(studio.instrument.send, body.get("name"), body.get("value")))

    async def live_loop(request: Request):
        return _reply(await _call(studio.send_loop, await _json(request)))

    routes = [
        Route("/", index), Route("/api/state", state), Route("/api/poll", poll),
        Route("/api/model", model, methods=["POST"]), Route("/api/sources", sources),
        Route("/api/sources/upload", upload, methods=["POST"]), Route("/api/sources/roll", source_roll),
        Route("/api/preview", preview, methods=["POST"]), Route("/api/audio/{key}", audio),
        Route("/api/takes", takes, methods=["GET", "POST"]),
        Route("/api/takes/{id:int}", take, methods=["GET", "PATCH", "DELETE"]),
        Route("/api/takes/{id:int}/roll", take_roll), Route("/api/takes/{id:int}/verify", verify, methods=["POST"]),
        Route("/api/takes/{id:int}/export/{fmt}", export),
        Route("/api/live/target", live_target, methods=["POST"]),
        Route("/api/live/control", live_control, methods=["POST"]),
        Route("/api/live/loop", live_loop, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    async def bad_request(request: Request, exc: Exception):
        return _error(400, str(exc))

    return Starlette(routes=routes, exception_handlers={StudioError: bad_request, ValueError: bad_request},
                     middleware=[Middleware(Guard, allowed_hosts=allowed_hosts)])


class Guard:
    """ASGI middleware: only this server's host names, only its own page's changes; no caching of /static."""

    def __init__(self, app, allowed_hosts: set):
        self.app, self.allowed = app, allowed_hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host, origin = headers.get("host", ""), headers.get("origin")
        refused = None
        if host not in self.allowed:
            refused = f"host {host!r} is not this studio (allowed: {', '.join(sorted(self.allowed))})"
        elif scope["method"] not in ("GET", "HEAD") and origin and urlsplit(origin).netloc not in self.allowed:
            refused = f"requests from {origin} are refused: use the studio's own page"
        if refused:
            return await _error(403, refused)(scope, receive, send)
        if not scope["path"].startswith("/static"):
            return await self.app(scope, receive, send)

        async def no_cache(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"cache-control", b"no-cache")]
            await send(message)
        await self.app(scope, receive, no_cache)


def _pcm(data: bytes, info: dict) -> Response:
    headers = {"X-Ready": str(info["ready"]), "X-Total": str(info["total"]), "X-Rate": str(info["rate"]),
               "X-Done": "1" if info["done"] else "0", "X-Error": info["error"][:200].encode("ascii", "replace")
               .decode(), "Cache-Control": "no-store"}
    return Response(data, media_type="application/octet-stream", headers=headers)
