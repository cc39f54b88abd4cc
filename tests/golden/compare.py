"""compare.py BEFORE AFTER [BEFORE2]: golden outputs of the restructure. Byte-identical, except:
WAVs (reSIDfp leaves state uninitialised, so two renders of the same frames differ by a few
LSB: compared against BEFORE vs BEFORE2, two runs of the same old code) and score.json (the
file paths inside differ)."""
import json, sys
from pathlib import Path
import numpy as np
a, b = Path(sys.argv[1]), Path(sys.argv[2]); c = Path(sys.argv[3]) if len(sys.argv) > 3 else None
def pcm(p): return np.frombuffer(p.read_bytes()[44:], np.int16).astype(np.int64)
def rms_db(x, y): d = x - y; return 20 * np.log10(max(np.sqrt(np.mean(d.astype(float) ** 2)), 1e-9) / 32768)
bad = 0
for f in sorted(a.iterdir()):
    if f.name == "SHA256SUMS": continue
    g = b / f.name
    if f.suffix == ".wav":
        x, y = pcm(f), pcm(g); same_hdr = f.read_bytes()[:44] == g.read_bytes()[:44]
        ok = same_hdr and len(x) == len(y)
        line = f"{f.name}: header {'same' if same_hdr else 'DIFFERS'}, max |diff| {np.abs(x - y).max()} LSB, rms {rms_db(x, y):.1f} dBFS"
        if c is not None:
            z = pcm(c / f.name); floor = np.abs(x - z).max()
            line += f" (old code vs itself: {floor} LSB, {rms_db(x, z):.1f} dBFS)"
            ok = ok and np.abs(x - y).max() <= 2 * max(floor, 8)
    elif f.name == "score.json":
        strip = lambda d: json.dumps({**d, "files": [{k: v for k, v in r.items() if k != "path"} for r in d["files"]]}, sort_keys=True)
        ok = strip(json.loads(f.read_text())) == strip(json.loads(g.read_text()))
        line = f"{f.name}: {'identical but for paths' if ok else 'DIFFERS'}"
    else:
        ok = f.read_bytes() == g.read_bytes(); line = f"{f.name}: {'byte-identical' if ok else 'DIFFERS'}"
    bad += not ok
    print(("ok   " if ok else "FAIL ") + line)
print(f"{bad} differences"); sys.exit(1 if bad else 0)
