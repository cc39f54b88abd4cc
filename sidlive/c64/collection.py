"""The collection dump: every tune of an HVSC tree to register-frame shards, resumably.

    python -m sidlive.c64.dump HVSC_ROOT OUT_DIR [--workers N] [--max-seconds S]
                            [--all-subtunes] [--limit N] [--shard-mb MB]

Dataset layout (training reads this):
  OUT_DIR/index.jsonl  one JSON object per (tune, subtune) attempted, see `_entry`:
      path (relative to HVSC_ROOT), md5, subtune (1-based), songs, title, author, released,
      clock, chip, speed ("vbi"|"cia"), play_hz, frames, status, message, usable,
      seconds_from, changed_frames, retriggers (gate restarts inside one frame made
      visible, see sidlive.c64.machine.mark_retriggers), shard ("shards/NAME.npy" or null),
      offset (first row in the shard, or null).
  OUT_DIR/shards/*.npy (rows, 25) uint8 canonical frames, tunes concatenated; written
      to a tmp file and renamed BEFORE their index lines are appended, so every index
      line points at complete data. np.load(path, mmap_mode="r") reads them.
  OUT_DIR/summary.json status counts, frames, wall time, frames/s and the options.

Statuses: ok; unsupported (RSID/MUS/multi-SID); error (malformed file, emulator
exception); init_timeout (init never returned: no frames); play_timeout / jam /
bad_address (the tune stopped keeping time part way). `usable` is true for ok, and for
the partial statuses when at least MIN_PARTIAL_SECONDS of frames came out before the
failure: those frames are the tune as it played, so they are kept for training; shorter
partial runs are dropped (frames 0, shard null).

Resume: entries already in index.jsonl are skipped. A run killed at any point (kill -9)
leaves at worst a truncated last index line, which is cut off, a *.tmp shard, which is
deleted, and a shard no index line points at, which is deleted; their tunes are redone.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sidlive.c64.dump import DEFAULT_SECONDS, PARTIAL_STATUSES, frame_rate_hz, resolve_seconds, run_tune
from sidlive.c64.psid import PsidFormatError, load_psid
from sidlive.c64.songlengths import load_songlengths, songlengths_path
from sidlive.frames import NUM_REGS, PAL_FRAME_RATE_HZ, canonicalize

MIN_PARTIAL_SECONDS = 10.0
DEFAULT_SHARD_MB = 32
INDEX_NAME = "index.jsonl"
SHARDS_DIR = "shards"


# ---------------------------------------------------------------------------- jobs

def plan_jobs(root: Path, all_subtunes: bool, limit: int | None) -> tuple[list, list]:
    """([(relpath, subtune)], [index entries for files that cannot be dumped]) in path order."""
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".sid" and p.is_file())
    if limit is not None:
        files = files[:limit]
    jobs, failed = [], []
    for p in files:
        rel = p.relative_to(root).as_posix()
        try:
            tune = load_psid(p)
        except (OSError, PsidFormatError) as e:
            failed.append(_entry(rel, subtune=1, status="error", message=str(e)))
            continue
        reason = tune.unsupported()
        if reason:
            failed.append(_entry(rel, tune=tune, subtune=tune.start_song, status="unsupported",
                                 message=reason))
            continue
        subs = range(1, tune.songs + 1) if all_subtunes else [tune.start_song]
        jobs += [(rel, s) for s in subs]
    return jobs, failed


def _entry(rel: str, *, subtune: int, status: str, message: str = "", tune=None, **fields) -> dict:
    e = {"path": rel, "md5": tune.md5 if tune else None, "subtune": subtune,
         "songs": tune.songs if tune else None, "title": tune.title if tune else "",
         "author": tune.author if tune else "", "released": tune.released if tune else "",
         "clock": tune.frames_clock() if tune else None, "chip": tune.frames_chip() if tune else None,
         "speed": ("cia" if tune.speed_cia(subtune) else "vbi") if tune else None,
         "play_hz": None, "frames": 0, "status": status, "message": message, "usable": False,
         "seconds_from": None, "changed_frames": 0, "retriggers": 0, "shard": None, "offset": None}
    e.update(fields)
    return e


# ---------------------------------------------------------------------------- worker

_WORKER: dict = {}


def _init_worker(root: str, songlengths: dict, max_seconds: float) -> None:
    _WORKER.update(root=Path(root), songlengths=songlengths, max_seconds=max_seconds)


def dump_job(root: Path, rel: str, subtune: int, songlengths: dict, max_seconds: float):
    """Dump one (tune, subtune) -> (index entry without shard/offset, (N, 25) uint8 or None)."""
    t0 = time.process_time()
    tune = None
    try:
        tune = load_psid(root / rel)
        secs, secs_from = resolve_seconds(tune, subtune, None, songlengths, None)
        secs = min(secs, max_seconds)
        rate_hz = frame_rate_hz(tune.frames_clock())
        res = run_tune(tune, subtune, max(1, round(secs * rate_hz)))
    except Exception as e:  # one bad tune must never stop the collection
        entry = _entry(rel, tune=tune, subtune=subtune, status="error",
                       message=f"{type(e).__name__}: {e}")
        entry["cpu_s"] = time.process_time() - t0
        return entry, None
    regs = canonicalize(np.asarray(res.regs, dtype=np.uint8).reshape(-1, NUM_REGS))  # (N, 25)
    usable = res.status == "ok" and len(regs) > 0
    if res.status in PARTIAL_STATUSES:
        usable = len(regs) >= MIN_PARTIAL_SECONDS * rate_hz
    if not usable:
        regs = regs[:0]
    changed = int(np.any(regs[1:] != regs[:-1], axis=1).sum()) if len(regs) > 1 else 0
    entry = _entry(rel, tune=tune, subtune=subtune, status=res.status, message=res.message,
                   speed=res.speed, play_hz=round(float(res.play_hz), 3), frames=int(len(regs)),
                   usable=bool(usable), seconds_from=secs_from, changed_frames=changed,
                   retriggers=int(res.retriggers))
    entry["cpu_s"] = time.process_time() - t0
    return entry, (regs if len(regs) else None)


def _work(job):
    rel, subtune = job
    w = _WORKER
    return dump_job(w["root"], rel, subtune, w["songlengths"], w["max_seconds"])


# ---------------------------------------------------------------------------- output

class DatasetWriter:
    """Appends entries to index.jsonl and frames to shards, crash-safely (see module doc)."""

    def __init__(self, out_dir: Path, shard_bytes: int):
        self.out = Path(out_dir)
        self.shards = self.out / SHARDS_DIR
        self.shards.mkdir(parents=True, exist_ok=True)
        self.index_path = self.out / INDEX_NAME
        self.shard_bytes = shard_bytes
        self.entries = self._recover()
        self.done = {(e["path"], e["subtune"]) for e in self.entries}
        nums = [int(p.stem.split("-")[1]) for p in self.shards.glob("shard-*.npy")]
        self.next_shard = max(nums, default=-1) + 1
        self.pending: list[tuple[dict, np.ndarray]] = []
        self.pending_rows = 0

    def _recover(self) -> list[dict]:
        for tmp in self.shards.glob("*.tmp*"):
            tmp.unlink()
        entries = []
        if self.index_path.exists():
            blob = self.index_path.read_bytes()
            good = blob[:blob.rfind(b"\n") + 1]  # a line without its newline was cut by a kill
            if len(good) != len(blob):
                with open(self.index_path, "r+b") as f:
                    f.truncate(len(good))
            for lineno, line in enumerate(good.decode("utf-8").splitlines(), start=1):
                if line.strip():
                    try:
                        entries.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{self.index_path}: line {lineno}: not JSON ({e})") from None
        used = {e["shard"] for e in entries if e.get("shard")}
        for p in self.shards.glob("shard-*.npy"):
            if f"{SHARDS_DIR}/{p.name}" not in used:
                p.unlink()  # written, but killed before its index lines went in
        return entries

    def add(self, entry: dict, regs: np.ndarray | None) -> None:
        """Queue a tune's entry and frames (regs None: index line only); writes a shard once enough is queued."""
        if regs is None:
            self._append_index([entry])
            return
        self.pending.append((entry, regs))
        self.pending_rows += len(regs)
        if self.pending_rows * NUM_REGS >= self.shard_bytes:
            self.flush()

    def flush(self) -> None:
        """Write the queued frames as one shard (tmp file, fsync, rename), then append their index lines."""
        if not self.pending:
            return
        name = f"shard-{self.next_shard:06d}.npy"
        self.next_shard += 1
        data = np.concatenate([r for _, r in self.pending], axis=0)  # (rows, 25)
        tmp = self.shards / (name + ".tmp")
        with open(tmp, "wb") as f:
            np.save(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.shards / name)
        _fsync_dir(self.shards)
        offset, entries = 0, []
        for entry, regs in self.pending:
            entries.append(dict(entry, shard=f"{SHARDS_DIR}/{name}", offset=offset))
            offset += len(regs)
        self.pending, self.pending_rows = [], 0
        self._append_index(entries)

    def _append_index(self, entries: list[dict]) -> None:
        text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
        with open(self.index_path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        self.entries += entries
        self.done.update((e["path"], e["subtune"]) for e in entries)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- run

def dump_collection(root, out_dir, *, workers: int | None = None, max_seconds: float = DEFAULT_SECONDS,
                    all_subtunes: bool = False, limit: int | None = None,
                    shard_mb: float = DEFAULT_SHARD_MB, progress: bool = True) -> dict:
    """Dump the tree under `root` into `out_dir`; returns the summary (also summary.json)."""
    root, out = Path(root), Path(out_dir)
    if not root.is_dir():
        raise ValueError(f"HVSC_ROOT {root} is not a folder")
    if not 0 < max_seconds <= 3600:
        raise ValueError(f"max_seconds is {max_seconds}, allowed 0 < max_seconds <= 3600")
    workers = workers or os.cpu_count() or 1
    t0 = time.time()
    sl_path = songlengths_path(root)
    songlengths = load_songlengths(sl_path) if sl_path else {}
    writer = DatasetWriter(out, int(shard_mb * 2**20))
    jobs, failed = plan_jobs(root, all_subtunes, limit)
    for e in failed:
        if (e["path"], e["subtune"]) not in writer.done:
            writer.add(e, None)
    todo = [j for j in jobs if j not in writer.done]
    options = {"hvsc_root": str(root), "out_dir": str(out), "workers": workers,
               "max_seconds": max_seconds, "all_subtunes": all_subtunes, "limit": limit,
               "shard_mb": shard_mb, "songlengths": str(sl_path) if sl_path else None,
               "min_partial_seconds": MIN_PARTIAL_SECONDS}
    print(f"collection dump: {len(jobs) + len(failed)} entries planned, "
          f"{len(todo)} to do ({len(jobs) + len(failed) - len(todo)} already in {writer.index_path})",
          flush=True)
    run_frames, run_cpu_s, fails = 0, 0.0, 0
    bar = _progress(len(todo), progress)
    try:
        if todo:
            ctx = mp.get_context("spawn")
            with ctx.Pool(workers, _init_worker, (str(root), songlengths, max_seconds)) as pool:
                for entry, regs in pool.imap_unordered(_work, todo, chunksize=1):
                    run_cpu_s += entry.pop("cpu_s", 0.0)
                    run_frames += entry["frames"]
                    fails += entry["status"] != "ok"
                    writer.add(entry, regs)
                    if bar is not None:
                        el = max(time.time() - t0, 1e-9)
                        bar.set_postfix_str(f"frames/s {run_frames / el:,.0f} fail {fails}", refresh=False)
                        bar.update(1)
    finally:
        writer.flush()
        if bar is not None:
            bar.close()
    wall_s = time.time() - t0
    summary = summarize(writer.entries, options, wall_s, run_frames, run_cpu_s, len(todo))
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(format_summary(summary))
    return summary


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    return tqdm(total=total, unit="tune", smoothing=0.05, mininterval=2.0)


def summarize(entries: list[dict], options: dict, wall_s: float, run_frames: int,
              run_cpu_s: float, run_entries: int) -> dict:
    """The summary.json record: status counts and percentages, frame totals, this run's speed, options."""
    counts = Counter(e["status"] for e in entries)
    n = max(len(entries), 1)
    return {
        "entries": len(entries),
        "statuses": {s: {"count": c, "percent": round(100.0 * c / n, 2)} for s, c in counts.most_common()},
        "usable_entries": sum(bool(e.get("usable")) for e in entries),
        "ok_percent": round(100.0 * counts.get("ok", 0) / n, 2),
        "total_frames": int(sum(e["frames"] for e in entries)),
        "usable_frames": int(sum(e["frames"] for e in entries if e.get("usable"))),
        "speed_counts": dict(Counter(e["speed"] for e in entries if e.get("speed"))),
        "this_run": {"entries": run_entries, "frames": run_frames, "wall_s": round(wall_s, 1),
                     "frames_per_s": round(run_frames / max(wall_s, 1e-9), 1),
                     "frames_per_cpu_s": round(run_frames / max(run_cpu_s, 1e-9), 1)},
        "options": options,
    }


def format_summary(s: dict) -> str:
    """The summary as a text table for the terminal."""
    lines = [f"{'status':<14}{'count':>8}{'%':>8}"]
    lines += [f"{k:<14}{v['count']:>8}{v['percent']:>8.2f}" for k, v in s["statuses"].items()]
    r = s["this_run"]
    lines += [f"{'total':<14}{s['entries']:>8}",
              f"frames: {s['total_frames']:,} ({s['usable_frames']:,} usable, "
              f"{s['total_frames'] / PAL_FRAME_RATE_HZ / 3600:.1f} h)",
              f"this run: {r['entries']} entries, {r['frames']:,} frames in {r['wall_s']:.1f} s = "
              f"{r['frames_per_s']:,.0f} frames/s ({r['frames_per_cpu_s']:,.0f} per CPU-second)",
              "options: " + json.dumps(s["options"])]
    return "\n".join(lines)
