"""What the studio does, apart from HTTP: takes from the page's settings (new, variations,
continue, branch, regenerate), their checks, exports, previews, rolls and the instrument.

Request fields are checked here, each error naming the field and its allowed values.
Everything that runs the engine or the emulator runs in a worker thread (the routes call the
blocking methods through a thread pool), never on the event loop.
"""
from __future__ import annotations

import secrets
import tempfile
import threading
from pathlib import Path

import numpy as np

from engine.generator import Generator
from sidlive.control.params import PARAMS, SAMPLING_DEFAULTS
from sidlive.export.psidfile import ExportError, export_frames
from sidlive.frames import PAL_FRAME_RATE_HZ, save_txt
from sidlive.paths import DEFAULT_MODEL, MODELS_DIR
from sidlive.studio.instrument import Instrument
from sidlive.studio.library import Library, NotFound
from sidlive.studio.models import ModelError, Models
from sidlive.studio.roll import roll_piece
from sidlive.studio.sources import MAX_SID_BYTES, MAX_UPLOAD_BYTES, Sources
from sidlive.studio.spec import LENGTH_S, SEED_MAX, SpecError, TakeSpec, check_spec, run_spec
from sidlive.studio.worker import Worker

VARIATIONS = 4
EXPORT_FORMATS = {"sid": "audio/prs.sid", "wav": "audio/wav", "regs": "application/octet-stream",
                  "txt": "text/plain; charset=us-ascii"}


class StudioError(ValueError):
    """A request the studio refuses; the message says which field and what is allowed."""


def field(req: dict, name: str, kind, lo=None, hi=None, default=None, allow_none: bool = False):
    """req[name] as int or float within lo..hi (default when absent); StudioError naming the field."""
    v = req.get(name, default)
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not float(v).is_integer()):
        raise StudioError(f"field {name}: {v!r} is not a {'whole number' if kind is int else 'number'}"
                          + (f" in {lo}..{hi}" if lo is not None else ""))
    v = kind(v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise StudioError(f"field {name}: {v} is out of range {lo}..{hi}")
    return v


def random_seed() -> int:
    """A fresh seed in 0..SEED_MAX."""
    return secrets.randbelow(SEED_MAX + 1)


class Studio:
    """The studio's parts: library, models, sources, the worker, the instrument."""

    def __init__(self, library: str | Path | None = None, model: str | Path | None = None, *,
                 live_host: str = "127.0.0.1", live_port: int = 9000, live_loops: str | Path | None = None):
        self.library = Library(library)
        self.models = Models(model or DEFAULT_MODEL, folders=[MODELS_DIR, self.library.root / "models"])
        self.sources = Sources(self.library)
        self.worker = Worker(self.library, self.models)
        self.instrument = Instrument(live_host, live_port, live_loops)
        self.model_ready = threading.Event()
        self._loader = threading.Thread(target=self._load_first, args=(model or DEFAULT_MODEL,), daemon=True)
        self._loader.start()

    def _load_first(self, path) -> None:
        try:
            lm = self.models.select(path)
            Generator(lm.model, log=None)          # compiles (or loads) the engine's kernels now
        except ModelError:
            pass                                  # models.error holds the message the page shows
        finally:
            self.model_ready.set()
            self.worker.changed()

    def close(self) -> None:
        """Stop the worker and close the library."""
        self.worker.stop()
        self.library.close()

    # ------------------------------------------------------------------ state
    def state(self) -> dict:
        """Everything the page starts from: the model, the sampling controls, limits, the instrument."""
        lm = self.models.current
        controls = {k: {"lo": PARAMS[k].lo, "hi": PARAMS[k].hi, "default": SAMPLING_DEFAULTS[k],
                        "doc": PARAMS[k].doc} for k in SAMPLING_DEFAULTS}
        return {"model": lm.info() if lm else None, "model_error": self.models.error,
                "model_loading": not self.model_ready.is_set(), "models": self.models.available(),
                "controls": controls, "seed_max": SEED_MAX, "length_s": {"lo": LENGTH_S[0], "hi": LENGTH_S[1],
                                                                        "default": 30.0},
                "frame_rate_hz": PAL_FRAME_RATE_HZ, "limits": {"upload_bytes": MAX_UPLOAD_BYTES,
                                                              "sid_bytes": MAX_SID_BYTES},
                "library": str(self.library.root), "interrupted": self._still_interrupted(),
                "instrument": self.instrument.info(), "version": self.worker.version}

    def _still_interrupted(self) -> list[int]:
        """The takes the last stop interrupted that are not made again yet."""
        out = []
        for tid in self.library.interrupted:
            try:
                if self.library.take(tid)["status"] == "interrupted":
                    out.append(tid)
            except NotFound:
                pass
        return out

    def select_model(self, path: str) -> dict:
        """Use another of the listed model files; ModelError (the one in use stays) when it does not load."""
        listed = [m["path"] for m in self.models.available()]
        if path not in listed:
            raise StudioError(f"field path: {path!r} is not one of the studio's models ({', '.join(listed)}); "
                              f"put .sidm files in {self.library.root / 'models'} or start with --model")
        lm = self.models.select(path)
        Generator(lm.model, log=None)
        self.worker.changed()
        return lm.info()

    # ------------------------------------------------------------------ takes
    def make_takes(self, req: dict) -> list[dict]:
        """Record and queue the takes a request asks for (see the module docstring)."""
        kind = req.get("kind", "new")
        if kind == "new":
            specs, meta = self._new_spec(req)
        elif kind in ("variation", "continue", "branch", "regenerate"):
            parent_id = field(req, "take", int, 1, None)
            if kind == "regenerate":
                return self._regenerate(parent_id)
            specs, meta = self._derived(kind, parent_id, req)
        else:
            raise StudioError(f"field kind: {kind!r} is not one of new, variation, continue, branch, regenerate")
        lm_name = Path(specs[0].model_path).stem
        ids, group = [], None
        for i, spec in enumerate(specs):
            name = meta["name"] if len(specs) == 1 else f"{meta['name']} · var {i + 1}"
            tid = self.library.create_take(spec, name=name, kind=meta["kind"], model_name=lm_name,
                                           source=meta["source"], parent=meta.get("parent"), group_id=group,
                                           branch_at=meta.get("branch_at"))
            group = group or tid
            ids.append(tid)
        for tid, spec in zip(ids, specs):
            self.worker.submit(tid, spec.total_frames)
        return [self.library.take(t) for t in ids]

    def _sampling(self, req: dict, base: dict) -> dict:
        out = {}
        for k in SAMPLING_DEFAULTS:
            p = PARAMS[k]
            out[k] = field(req, k, int if p.kind == "integer" else float, p.lo, p.hi, base[k])
        return out

    def _seed(self, req: dict) -> int:
        s = field(req, "seed", int, 0, SEED_MAX, allow_none=True)
        return random_seed() if s is None else s

    def _new_spec(self, req: dict) -> tuple[list[TakeSpec], dict]:
        lm = self.models.require()
        prompt, label, chip = np.zeros((0, 25), np.uint8), "no prompt", "6581"
        key = req.get("source")
        if key:
            fr = self.sources.frames(key, field(req, "subtune", int, 1, 256, allow_none=True))
            start = field(req, "start", int, 0, len(fr) - 1, 0)
            end = field(req, "end", int, start + 1, len(fr), len(fr))
            prompt, chip = fr.regs[start:end], fr.chip
            label = f"{(fr.title or key)[:40]} {start / fr.frame_rate_hz:.1f}-{end / fr.frame_rate_hz:.1f} s"
        length = field(req, "length_s", float, LENGTH_S[0], LENGTH_S[1], 30.0)
        voices = req.get("keep_voices") or []
        if not isinstance(voices, list):
            raise StudioError(f"field keep_voices: {voices!r} is not a list of voices 1..3")
        spec = TakeSpec(model_path=str(lm.path), model_digest=lm.digest, seed=self._seed(req),
                        frames=max(1, round(length * PAL_FRAME_RATE_HZ)),
                        composer=req.get("composer") or "any", keep_voices=tuple(voices),
                        chip=req.get("chip") or chip, prompt=prompt, keep=prompt if voices else prompt[:0],
                        **self._sampling(req, SAMPLING_DEFAULTS))
        try:
            check_spec(spec, lm.model.cfg.composers)
        except SpecError as e:
            raise StudioError(str(e)) from None
        count = field(req, "count", int, 1, VARIATIONS, 1)
        specs = [spec] + [spec.with_arrays(seed=random_seed()) for _ in range(count - 1)]
        return specs, {"name": label, "kind": "new" if count == 1 else "variation", "source": label}

    def _derived(self, kind: str, parent_id: int, req: dict) -> tuple[list[TakeSpec], dict]:
        parent = self.library.take(parent_id)
        base = self.library.spec(parent_id)
        meta = {"kind": kind, "parent": parent_id, "source": parent["source"]}
        if kind == "variation":
            specs = [base.with_arrays(seed=random_seed()) for _ in range(VARIATIONS)]
            return specs, {**meta, "name": parent["name"]}
        if parent["status"] != "done":
            raise StudioError(f"take {parent_id} is {parent['status']}; only a finished take can be "
                              f"{'continued' if kind == 'continue' else 'branched'}")
        frames = self.library.take_frames(parent_id).regs
        seed = self._seed(req)
        if kind == "continue":
            length = field(req, "length_s", float, LENGTH_S[0], LENGTH_S[1], base.frames / PAL_FRAME_RATE_HZ)
            spec = base.with_arrays(head=frames, frames=max(1, round(length * PAL_FRAME_RATE_HZ)), seed=seed)
            meta["name"] = f"{parent['name']} · continued"
        else:
            at = field(req, "at", int, 1, len(frames) - 1)
            spec = base.with_arrays(head=frames[:at], frames=len(frames) - at, seed=seed)
            meta.update(name=f"{parent['name']} · branch at {at / PAL_FRAME_RATE_HZ:.1f} s", branch_at=at)
        if spec.total_frames > round(LENGTH_S[1] * PAL_FRAME_RATE_HZ) * 2:
            raise StudioError(f"take {parent_id}: a take holds at most {2 * LENGTH_S[1]:g} s; this one "
                              f"would be {spec.total_frames / PAL_FRAME_RATE_HZ:.0f} s")
        return [spec], meta

    def _regenerate(self, take_id: int) -> list[dict]:
        take = self.library.take(take_id)
        if take["status"] in ("interrupted", "failed"):
            self.library.set_status(take_id, "queued")
            self.worker.submit(take_id, take["total_frames"])
            return [self.library.take(take_id)]
        if take["status"] != "done":
            raise StudioError(f"take {take_id} is {take['status']}; it is being made already")
        spec = self.library.spec(take_id)
        tid = self.library.create_take(spec, name=f"{take['name']} (again)", kind="regenerate",
                                       model_name=take["model_name"], source=take["source"], parent=take_id)
        self.worker.submit(tid, spec.total_frames)
        return [self.library.take(tid)]

    def verify(self, take_id: int) -> dict:
        """Make a finished take's frames again from its recipe and compare them, bit for bit."""
        spec = self.library.spec(take_id)
        stored = self.library.take_frames(take_id).regs
        model = self.models.for_take(spec.model_path, spec.model_digest, f"take {take_id}")
        regs, engine_s = run_spec(spec, model)
        again = np.concatenate([spec.head, regs]) if len(spec.head) else regs
        same = again.shape == stored.shape and bool(np.array_equal(again, stored))
        differ = int(np.any(again != stored, axis=1).sum()) if again.shape == stored.shape else None
        return {"take": take_id, "identical": same, "frames": int(len(stored)), "frames_differing": differ,
                "engine_s": round(engine_s, 3)}

    # ------------------------------------------------------------------ exports, previews, rolls
    def export(self, take_id: int, fmt: str) -> tuple[bytes, str]:
        """(the file's bytes, its download name) for fmt in sid, wav, regs, txt."""
        if fmt not in EXPORT_FORMATS:
            raise StudioError(f"export format {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
        take = self.library.take(take_id)
        base = "".join(c if c.isalnum() or c in "-_" else "_" for c in take["name"])[:60].strip("_") or "take"
        name = f"{base}-{take_id}.{fmt}"
        if fmt == "wav":
            return self.library.wav_path(take_id).read_bytes(), name
        if fmt == "regs":
            self.library.take_frames(take_id)
            return (self.library.take_dir(take_id) / "take.regs").read_bytes(), name
        frames = self.library.take_frames(take_id)
        with tempfile.TemporaryDirectory(prefix="sidlive-studio-") as tmp:
            out = Path(tmp) / f"out.{fmt}"
            if fmt == "txt":
                save_txt(frames, out)
            else:
                try:
                    export_frames(frames, out, title=take["name"], author="sidlive studio",
                                  released=f"seed {take['seed']}", warn=lambda m: None)
                except ExportError as e:
                    raise StudioError(f"take {take_id}: .sid export: {e}") from None
            return out.read_bytes(), name

    def fragment(self, req: dict) -> tuple[np.ndarray, str, str, float]:
        """(frames, chip, label, rate) of the part of a source or take a request names (source/take, start, end)."""
        if req.get("take") is not None:
            tid = field(req, "take", int, 1, None)
            fr, label = self.library.take_frames(tid), self.library.take(tid)["name"]
        else:
            key = req.get("source")
            if not key:
                raise StudioError("field source: name a source (loop:<name>, upload:<id>) or a take")
            fr = self.sources.frames(key, field(req, "subtune", int, 1, 256, allow_none=True))
            label = fr.title or key
        start = field(req, "start", int, 0, max(0, len(fr) - 1), 0)
        end = field(req, "end", int, start + 1, len(fr), len(fr))
        return fr.regs[start:end], req.get("chip") or fr.chip, label, fr.frame_rate_hz

    def preview(self, req: dict) -> dict:
        """Render a fragment for listening; returns its audio key."""
        regs, chip, _, _ = self.fragment(req)
        return {"key": self.worker.preview(regs, chip), "frames": int(len(regs))}

    def send_loop(self, req: dict) -> dict:
        """A fragment of a take or source becomes a prompt loop of the running instrument."""
        regs, chip, label, _ = self.fragment(req)
        return self.instrument.send_loop(regs, f"studio-{label}", source=f"sidlive studio: {label}", chip=chip)

    def source_roll(self, key: str, subtune: int | None) -> dict:
        """The roll of a whole source, with its length and chip."""
        fr = self.sources.frames(key, subtune)
        roll = roll_piece(fr.regs, 0, len(fr), clock=fr.clock, frame_rate_hz=fr.frame_rate_hz)
        roll.update(title=fr.title, author=fr.author, chip=fr.chip, status=fr.extra.get("status", ""),
                    seconds=round(fr.seconds, 2))
        return roll

    def take_roll(self, take_id: int, start: int = 0) -> dict:
        """The roll of a take from frame `start` (while it is made: up to the frames made so far)."""
        stream = self.worker.stream_for(take_id)
        if stream is not None:
            regs, total = stream.frames[:stream.frames_ready].copy(), stream.total_frames
        else:
            regs = self.library.take_frames(take_id).regs
            total = len(regs)
        start = min(max(0, int(start)), len(regs))
        roll = roll_piece(regs, start, len(regs))
        roll["total_frames"] = total
        return roll

