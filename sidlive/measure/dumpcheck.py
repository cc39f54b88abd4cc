"""Acceptance report for the dumper: oracle agreement, collection coverage, speed.

    python -m sidlive.measure.dumpcheck HVSC_ROOT [--n 200] [--frames 3000] [--seed 0]
                                   [--cia 20] [--jobs 1] [--dataset OUT_DIR] [--json FILE]

Oracle: pysidtracker's `oracle.register_grid` (jennings 6502; init, then one play call
per frame, registers sampled after each call). For --n VBI-timed start songs sampled
(seeded) from the collection, our raw frame i (dump_tune(raw=True): no gate-restart
marks, which the oracle does not make) is compared with the oracle's row i over the
first --frames frames, both canonicalised (sidlive.frames.canonicalize); how many frames
the marks then change is reported beside. Mismatches list
the first differing frame, the registers, a best-effort reason, and whether a shift of
a frame or two would have matched. CIA-timed tunes (--cia of them) are reported apart:
the oracle calls play once per frame whatever the speed bits say, we call it at the CIA
timer's rate, so only tunes whose timer is ~50 Hz can agree.
Coverage and whole-collection figures come from a collection dump's summary (--dataset).
Speed: our frames per CPU-second, measured on the sampled tunes.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from sidlive.c64.dump import dump_tune
from sidlive.c64.psid import PsidFormatError, load_psid
from sidlive.frames import REG_NAMES, canonicalize
from sidlive.frames import PAL_FRAME_RATE_HZ

# Absolute-address reads that make a tune depend on what the oracle does not model alike.
_READ_OPCODES = (0xAD, 0xAE, 0xAC, 0xBD, 0xB9, 0xBE, 0xBC, 0x2C, 0xCD, 0xEC, 0xCC, 0x4D, 0x6D, 0xED)
_HINT_ADDRS = {0xD41B: "reads osc3 $D41B", 0xD41C: "reads env3 $D41C", 0xD012: "reads raster $D012",
               0xD011: "reads raster $D011", 0xDC04: "reads CIA timer $DC04", 0xDC05: "reads CIA timer $DC05",
               0xDD04: "reads CIA2 timer $DD04", 0xD419: "reads paddle $D419"}


def code_hints(data: bytes) -> list[str]:
    """Which timing/SID read-backs the program's bytes contain (heuristic, may over-report)."""
    hints = []
    for addr, hint in _HINT_ADDRS.items():
        lo, hi = addr & 0xFF, addr >> 8
        if any(bytes([op, lo, hi]) in data for op in _READ_OPCODES):
            hints.append(hint)
    return hints


def sample_tunes(root: Path, n: int, seed: int, cia: bool) -> list[tuple[str, int]]:
    """Seeded sample of (relpath, start song) whose start song is CIA- (or VBI-) timed."""
    pool = []
    for p in sorted(root.rglob("*.sid")):
        try:
            t = load_psid(p)
        except PsidFormatError:
            continue
        if t.unsupported() or t.play_addr == 0:
            continue
        if t.speed_cia(t.start_song) == cia:
            pool.append((p.relative_to(root).as_posix(), t.start_song))
    rng = random.Random(seed)
    return rng.sample(pool, min(n, len(pool)))


def compare_one(args) -> dict:
    """Compare our raw dump of one (root, path, subtune, n_frames) with the oracle's; a result record."""
    root, rel, subtune, n_frames = args
    path = Path(root) / rel
    tune = load_psid(path)
    rec = {"path": rel, "subtune": subtune}
    t0 = time.process_time()
    try:  # raw snapshots: the oracle has no gate-restart marks
        ours = dump_tune(path, subtune=subtune, seconds=n_frames / PAL_FRAME_RATE_HZ + 0.01, raw=True)
        rec["our_cpu_s"] = time.process_time() - t0
        marked = dump_tune(path, subtune=subtune, seconds=n_frames / PAL_FRAME_RATE_HZ + 0.01)
    except Exception as e:  # report, do not stop the survey
        return dict(rec, result="our_error", reason=f"{type(e).__name__}: {e}")
    a = ours.regs[:n_frames]  # (N, 25)
    rec.update(frames=len(ours), status=ours.extra["status"], play_hz=ours.extra["play_hz"],
               speed=ours.extra["speed"], retriggers=marked.extra["retriggers"],
               marked_frames=int(np.any(marked.regs[:n_frames] != a, axis=1).sum()))
    from pysidtracker import oracle  # a test extra: the dump's reference oracle
    t0 = time.process_time()
    try:
        grid = oracle.register_grid(path.read_bytes(), n_frames, subtune=subtune - 1)
    except Exception as e:
        return dict(rec, result="oracle_error", reason=f"{type(e).__name__}: {e}")
    rec["oracle_cpu_s"] = time.process_time() - t0
    b = canonicalize(np.asarray(grid, dtype=np.uint8).reshape(-1, 25))  # (N, 25)
    n = min(len(a), len(b))
    diff = np.any(a[:n] != b[:n], axis=1)
    if rec["speed"] == "cia":
        rec["resampled_match_percent"] = resampled_match(a, b, rec["play_hz"])
    if n == n_frames and not diff.any():
        return dict(rec, result="identical")
    first = int(np.argmax(diff)) if diff.any() else n
    regs = [REG_NAMES[r] for r in np.flatnonzero(a[first] != b[first])] if first < n else []
    rec.update(result="differs", first_frame=first, regs=regs,
               differing_frames=int(diff.sum()),
               ours=a[first].tolist() if first < n else None,
               oracle=b[first].tolist() if first < n else None)
    shifts = [s for s in (-2, -1, 1, 2)
              if n > 10 and np.array_equal(a[max(0, s):n + min(0, s)], b[max(0, -s):n - max(0, s)])]
    rec["reason"] = _reason(rec, shifts, len(a), len(b), n_frames, code_hints(tune.data))
    return rec


def resampled_match(ours: np.ndarray, grid: np.ndarray, play_hz: float, slack: int = 1) -> float | None:
    """% of our frames found among the oracle's rows near the play call they follow.

    Our frame k comes after c0 + k * play_hz / 50.1245 play calls, c0 (the calls before
    our first frame) between 0 and a frame's worth; the oracle's row j after j + 1 calls.
    A CIA tune dumped right is the oracle's sequence sampled at our rate: the best c0
    finds (nearly) every frame within +-`slack` calls.
    """
    ratio = play_hz / PAL_FRAME_RATE_HZ
    best = None
    for c0 in range(0, int(np.ceil(ratio)) + 2):
        hits = total = 0
        for k in range(len(ours)):
            c = c0 + int(round(k * ratio)) - 1
            if c + slack >= len(grid):
                break
            total += 1
            hits += bool(np.any(np.all(grid[max(0, c - slack):c + slack + 1] == ours[k], axis=1)))
        if total:
            best = max(best or 0.0, 100.0 * hits / total)
    return round(best, 2) if best is not None else None


def _reason(rec: dict, shifts: list, n_ours: int, n_oracle: int, want: int, hints: list) -> str:
    if n_ours < want:
        return f"our dump stopped at {n_ours} frames: {rec['status']}"
    if rec.get("speed") == "cia":
        return (f"CIA timer: we call play at {rec['play_hz']:.2f} Hz, the oracle once per frame"
                + (" (same rate: phase of the timer IRQ within the frame)"
                   if abs(rec["play_hz"] - PAL_FRAME_RATE_HZ) < 0.2 else ""))
    if shifts:
        return f"identical when shifted by {shifts[0]} frame(s): frame alignment"
    parts = []
    if set(rec["regs"]) == {"mode_vol"}:
        parts.append("only $D418 differs (volume/filter-mode init: driver preset?)")
    if rec["first_frame"] == 0:
        parts.append("differs from the first frame (init state)")
    if hints:
        parts.append(", ".join(hints))
    return "; ".join(parts) or f"diverges at frame {rec['first_frame']}"


def speed_bench(root: Path, n_tunes: int, seconds: float, seed: int) -> dict:
    """Our frames per CPU-second on `n_tunes` sampled start songs, `seconds` each, after a warm-up
    (the first call in a process loads the compiled emulator from Numba's cache)."""
    picks = sample_tunes(root, n_tunes, seed + 1, cia=False)
    if not picks:
        return {}
    dump_tune(root / picks[0][0], subtune=picks[0][1], seconds=1.0)  # warm-up
    frames, cpu_s = 0, 0.0
    for rel, sub in picks:
        t0 = time.process_time()
        f = dump_tune(root / rel, subtune=sub, seconds=seconds)
        cpu_s += time.process_time() - t0
        frames += len(f)
    return {"tunes": len(picks), "seconds_each": seconds, "frames": frames,
            "cpu_s": round(cpu_s, 2), "frames_per_cpu_s": round(frames / max(cpu_s, 1e-9), 1)}


def coverage(dataset: Path) -> dict:
    """Coverage figures of a collection dump (summary.json, index.jsonl) with its commonest failures."""
    summary = json.loads((dataset / "summary.json").read_text())
    entries = [json.loads(l) for l in (dataset / "index.jsonl").read_text().splitlines() if l.strip()]
    fails = Counter((e["status"], (e["message"] or "")[:70]) for e in entries if e["status"] != "ok")
    return {"entries": summary["entries"], "ok_percent": summary["ok_percent"],
            "usable_percent": round(100.0 * summary["usable_entries"] / max(summary["entries"], 1), 2),
            "statuses": summary["statuses"], "total_frames": summary["total_frames"],
            "this_run": summary["this_run"], "options": summary["options"],
            "top_failures": [{"status": s, "message": m, "count": c} for (s, m), c in fails.most_common(15)]}


def run_report(root, n: int = 200, n_frames: int = 3000, seed: int = 0, n_cia: int = 20,
               jobs: int = 1, dataset=None, speed_tunes: int = 20) -> dict:
    """The full report: oracle agreement on sampled VBI and CIA tunes, speed, and coverage if given."""
    root = Path(root)
    report: dict = {"options": {"hvsc_root": str(root), "n": n, "frames": n_frames, "seed": seed,
                                "cia": n_cia, "jobs": jobs}}
    t0 = time.time()
    for key, cia, count in (("vbi", False, n), ("cia", True, n_cia)):
        if count <= 0:
            continue
        work = [(str(root), rel, sub, n_frames) for rel, sub in sample_tunes(root, count, seed, cia)]
        if jobs > 1:
            with mp.get_context("spawn").Pool(jobs) as pool:
                recs = pool.map(compare_one, work, chunksize=1)
        else:
            recs = [compare_one(w) for w in work]
        results = Counter(r["result"] for r in recs)
        report[key] = {"n": len(recs), "identical": results["identical"],
                       "identical_percent": round(100.0 * results["identical"] / max(len(recs), 1), 2),
                       "results": dict(results),
                       "not_identical": [r for r in recs if r["result"] != "identical"]}
        if cia:
            report[key]["play_hz"] = sorted(round(r.get("play_hz") or 0, 1) for r in recs)
            m = [r["resampled_match_percent"] for r in recs if r.get("resampled_match_percent") is not None]
            report[key]["resampled_match_percent_mean"] = round(float(np.mean(m)), 2) if m else None
        report[key]["tunes_with_retrigger_marks"] = sum(r.get("marked_frames", 0) > 0 for r in recs)
        report[key]["retrigger_marked_frames"] = sum(r.get("marked_frames", 0) for r in recs)
        frames = sum(r.get("frames", 0) for r in recs)
        cpu = sum(r.get("our_cpu_s", 0.0) for r in recs)
        report[key]["our_frames_per_cpu_s"] = round(frames / max(cpu, 1e-9), 1)
        ocpu = sum(r.get("oracle_cpu_s", 0.0) for r in recs)
        report[key]["oracle_frames_per_cpu_s"] = round(frames / max(ocpu, 1e-9), 1)
    if speed_tunes > 0:
        report["speed"] = speed_bench(root, speed_tunes, 120.0, seed)
    report["wall_s"] = round(time.time() - t0, 1)
    if dataset is not None and (Path(dataset) / "summary.json").exists():
        report["coverage"] = coverage(Path(dataset))
    return report


def format_report(r: dict) -> str:
    """run_report's record as text."""
    out = []
    for key, title in (("vbi", "VBI-timed"), ("cia", "CIA-timed")):
        if key not in r:
            continue
        s = r[key]
        out.append(f"== oracle agreement, {title} start songs: {s['identical']}/{s['n']} identical "
                   f"({s['identical_percent']:.1f}%)  results {s['results']}")
        out.append(f"   our speed {s['our_frames_per_cpu_s']:,.0f} frames/CPU-s, oracle "
                   f"{s['oracle_frames_per_cpu_s']:,.0f}; compared: raw snapshots. As dumped, "
                   f"gate-restart marks change {s['retrigger_marked_frames']:,} frames in "
                   f"{s['tunes_with_retrigger_marks']} of these tunes")
        if key == "cia":
            out.append(f"   our play rates (Hz): {s['play_hz']}")
            out.append(f"   our frames found among the oracle's play calls at our rate (+-1 call): "
                       f"mean {s['resampled_match_percent_mean']}%")
        for d in s["not_identical"]:
            where = (f"frame {d.get('first_frame')} regs {','.join(d.get('regs') or [])} "
                     f"({d.get('differing_frames')} frames differ)" if d["result"] == "differs" else d["result"])
            rs = d.get("resampled_match_percent")
            out.append(f"   {d['path']} #{d['subtune']}: {where}: {d.get('reason', '')}"
                       + (f" [resampled match {rs}%]" if rs is not None else ""))
    if r.get("speed"):
        s = r["speed"]
        out.append(f"== speed: {s['frames_per_cpu_s']:,.0f} frames per CPU-second ({s['tunes']} tunes x "
                   f"{s['seconds_each']:g} s, {s['frames']:,} frames in {s['cpu_s']:.1f} CPU-s, one process)")
    if "coverage" in r:
        c = r["coverage"]
        out.append(f"== coverage: {c['ok_percent']:.2f}% of {c['entries']} entries ok, "
                   f"{c['usable_percent']:.2f}% usable; {c['total_frames']:,} frames; "
                   f"dump {c['this_run']['wall_s']:.0f} s, {c['this_run']['frames_per_s']:,.0f} frames/s "
                   f"({c['this_run']['frames_per_cpu_s']:,.0f} per CPU-s)")
        for k, v in c["statuses"].items():
            out.append(f"   {k:<14}{v['count']:>7}{v['percent']:>8.2f}%")
        for f in c["top_failures"]:
            out.append(f"   {f['count']:>5} x {f['status']}: {f['message']}")
    out.append(f"wall {r['wall_s']:.0f} s")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Command line of the dump check: print the report (and write it as JSON); returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m sidlive.measure.dumpcheck", description=__doc__.split("\n\n")[0])
    p.add_argument("hvsc_root")
    p.add_argument("--n", type=int, default=200, help="VBI tunes compared with the oracle (default 200)")
    p.add_argument("--frames", type=int, default=3000, help="frames compared per tune (default 3000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cia", type=int, default=20, help="CIA-timed tunes compared (default 20)")
    p.add_argument("--jobs", type=int, default=1, help="processes (default 1; the oracle is slow)")
    p.add_argument("--speed-tunes", type=int, default=20,
                   help="tunes for the speed figure, 120 s each (default 20; 0 skips)")
    p.add_argument("--dataset", default=None, help="a collection dump's OUT_DIR, for coverage")
    p.add_argument("--json", default=None, help="also write the full report here")
    a = p.parse_args(argv)
    if not Path(a.hvsc_root).is_dir():
        print(f"verify_dump: HVSC_ROOT {a.hvsc_root} is not a folder", file=sys.stderr)
        return 1
    report = run_report(a.hvsc_root, a.n, a.frames, a.seed, a.cia, a.jobs, a.dataset, a.speed_tunes)
    print(format_report(report))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
