"""How much of a tune its own past predicts: the repeat candidates of engine/candidates.py
measured on real frames.

    python -m training.candstats FILE... [--json] [--seconds S]
    python -m training.candstats --data DATA_DIR [--tunes N] [--seed S] [--json]

FILE: .regs / .txt frames files or .sid tunes (dumped for --seconds, else their Songlengths
entry); --data: a random sample of tunes from a collection dump (training/dataset.py). Each
tune runs as [all-zero frame] + frames, as the dataset and the engine see it; every real
frame is predicted from the frames before it. Reported per file and pooled (frame-weighted):

  frame32     share of frames whose last 32 frames (the context) occurred earlier in the tune
  frame32_ok  ... of those, share where what followed the earlier occurrence is the frame
  notes32(_ok)      the same for the NOTES group (accuracy on its 9 registers)
  vnotes16(_ok)     share of voice-frames whose voice frequency+control context of >= 16
                    frames occurred earlier (VNOTESv), and accuracy on those 3 registers
  voice16(_ok)      the same for the voice's 7 registers (VOICEv)
  changed     registers per frame whose value differs from the previous frame's
  eq_<source> share of changed registers equal to each source (frame, notes, group, vnotes,
              extrap, back2..4); eq_match: any of the 4 match sources; eq_back: any of
              back2..4; eq_any: any source
  self_rep    share of frames with 32 frames before them whose previous 32 frames occurred
              earlier in the piece (frame32 over the frames that have a full context)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from engine.candidates import BACK_SOURCES, LENS, MATCH_SOURCES, SOURCES, tune_matches, window_candidates
from engine.matches import G_FRAME, G_NOTES, G_VNOTES1, G_VOICE1, GROUPS
from engine.matchstate import MatchState
from sidlive.frames import NUM_REGS, FramesFormatError
from training.dataset import FrameStore, load_index
from training.scorers import load_frames

B32 = LENS.index(32) + 1  # bucket of a 32-frame match
B16 = LENS.index(16) + 1


def _context(seq, ptr, bucket, g, min_bucket, regs):
    """(matches, right): frames t+1 whose group-g match after t is >= min_bucket long, and of
    those, how many continuations equal frame t+1 on regs."""
    n = len(seq) - 1
    hit = bucket[:n, g] >= min_bucket  # (n,)
    p = ptr[:n, g][hit] + 1
    right = (seq[p][:, regs] == seq[1:][hit][:, regs]).all(1)
    return int(hit.sum()), int(right.sum())


def tune_counts(frames: np.ndarray, state: MatchState | None = None) -> dict:
    """Raw counts for one tune (frames (N, 25) uint8, run after an all-zero frame)."""
    frames = np.asarray(frames, np.uint8)
    seq = np.concatenate([np.zeros((1, NUM_REGS), np.uint8), frames])  # (N+1, 25)
    n = len(frames)
    ptr, bucket = tune_matches(seq, state)
    vals, valid, _ = window_candidates(seq, ptr, bucket, 0, n)  # (n, 8, 25): row t predicts seq[t+1]
    c = {"frames": n, "context_frames": max(0, n - 31)}
    c["frame32"], c["frame32_ok"] = _context(seq, ptr, bucket, G_FRAME, B32, list(GROUPS[G_FRAME]))
    c["notes32"], c["notes32_ok"] = _context(seq, ptr, bucket, G_NOTES, B32, list(GROUPS[G_NOTES]))
    for name, g0 in (("vnotes16", G_VNOTES1), ("voice16", G_VOICE1)):
        c[name] = c[name + "_ok"] = 0
        for v in range(3):
            hit, right = _context(seq, ptr, bucket, g0 + v, B16, list(GROUPS[g0 + v]))
            c[name] += hit
            c[name + "_ok"] += right
    nxt, prev = seq[1:], seq[:-1]
    changed = nxt != prev  # (n, 25)
    eq = (valid == 1) & (vals == nxt[:, None, :]) & changed[:, None, :]  # (n, 8, 25)
    c["changed"] = int(changed.sum())
    for k, name in enumerate(SOURCES):
        c["eq_" + name] = int(eq[:, k].sum())
    c["eq_match"] = int(eq[:, list(MATCH_SOURCES)].any(1).sum())
    c["eq_back"] = int(eq[:, list(BACK_SOURCES)].any(1).sum())
    c["eq_any"] = int(eq.any(1).sum())
    return c


def shares(c: dict) -> dict:
    """Counts -> the reported shares (see the module docstring); None where undefined."""
    def div(a, b):
        return a / b if b else None

    out = {"frames": c["frames"]}
    out["frame32"], out["frame32_ok"] = div(c["frame32"], c["frames"]), div(c["frame32_ok"], c["frame32"])
    out["notes32"], out["notes32_ok"] = div(c["notes32"], c["frames"]), div(c["notes32_ok"], c["notes32"])
    for name in ("vnotes16", "voice16"):
        out[name], out[name + "_ok"] = div(c[name], 3 * c["frames"]), div(c[name + "_ok"], c[name])
    out["changed"] = div(c["changed"], c["frames"])
    for key in [k for k in c if k.startswith("eq_")]:
        out[key] = div(c[key], c["changed"])
    out["self_rep"] = div(c["frame32"], c["context_frames"])
    return out


def candstats(tunes, state: MatchState | None = None) -> dict:
    """tunes: iterable of (name, frames (N, 25) uint8). Returns {"files": [{"path", shares...}],
    "pooled": shares of the summed counts (frame-weighted)}."""
    files, total = [], {}
    for name, frames in tunes:
        c = tune_counts(frames, state)
        files.append({"path": str(name), **shares(c)})
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    if not files:
        raise ValueError("no tunes given")
    return {"files": files, "pooled": shares(total)}


COLUMNS = (("frame32", "fr32"), ("frame32_ok", "fr32ok"), ("notes32", "no32"), ("notes32_ok", "no32ok"),
           ("vnotes16", "vn16"), ("vnotes16_ok", "vn16ok"), ("voice16", "vo16"), ("voice16_ok", "vo16ok"),
           ("changed", "chg/fr"), ("eq_frame", "=frame"), ("eq_notes", "=notes"), ("eq_group", "=group"),
           ("eq_vnotes", "=vnote"), ("eq_match", "=match"), ("eq_extrap", "=extrap"), ("eq_back2", "=back2"),
           ("eq_back3", "=back3"), ("eq_back4", "=back4"), ("eq_back", "=back"), ("eq_any", "=any"),
           ("self_rep", "selfrep"))


def format_table(report: dict) -> str:
    """Rows: files and the pooled figures; columns: COLUMNS (shares in %, changed per frame)."""
    def cell(key, v):
        if v is None:
            return f"{'-':>7}"
        return f"{v:7.2f}" if key == "changed" else f"{100 * v:7.1f}"

    w = max([len(Path(f["path"]).name) for f in report["files"]] + [16])
    head = f"{'file':<{w}} {'frames':>7} " + " ".join(f"{h:>7}" for _, h in COLUMNS)
    rows = [head]
    for f in report["files"] + [{"path": "pooled", **report["pooled"]}]:
        rows.append(f"{Path(f['path']).name:<{w}} {f['frames']:>7} " + " ".join(cell(k, f[k]) for k, _ in COLUMNS))
    rows.append("shares in %: fr32/no32 frames with a 32-frame FRAME/NOTES context match, vn16/vo16 voice-frames "
                "with a >= 16-frame VNOTES/VOICE match, *ok continuation right on the group's registers; "
                "chg/fr changed registers per frame; =source: share of changed registers it predicts; "
                "selfrep: frames with 32 frames before them whose context occurred earlier")
    return "\n".join(rows)


def _file_tunes(paths, seconds):
    for p in paths:
        yield p, load_frames(p, seconds).regs


def _data_tunes(data_dir, n, seed):
    tunes = load_index(data_dir)
    pick = np.random.default_rng(seed).permutation(len(tunes))[:n]
    store = FrameStore(data_dir)
    for i in sorted(pick):
        t = tunes[i]
        yield f"{t.md5[:12]}-{t.subtune}", np.ascontiguousarray(store.frames(t))


def main(argv: list[str] | None = None) -> int:
    """`python -m training.candstats`: the repetition figures of the given tunes (table or JSON)."""
    ap = argparse.ArgumentParser(prog="python -m training.candstats", description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", help="frames files (.regs, .txt) or .sid tunes")
    ap.add_argument("--seconds", type=float, help="length to dump .sid files (default: Songlengths, else 180 s)")
    ap.add_argument("--data", help="a collection dump (index.jsonl + shards) instead of files")
    ap.add_argument("--tunes", type=int, default=20, help="tunes sampled from --data (default 20)")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed for --data")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    if bool(args.files) == bool(args.data):
        ap.error("give FILE... or --data DATA_DIR (one of them)")
    if args.tunes < 1:
        ap.error(f"--tunes must be >= 1, got {args.tunes}")
    try:
        tunes = _data_tunes(args.data, args.tunes, args.seed) if args.data else _file_tunes(args.files, args.seconds)
        report = candstats(tunes)
    except (ValueError, OSError, FramesFormatError) as e:
        print(f"candstats: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
