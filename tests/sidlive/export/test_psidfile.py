""".sid export: the player run by the project's 6510 dumper gives back the frames exactly."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from sidlive.c64.machine import run_psid
from sidlive.c64.psid import load_psid
from sidlive.commands.export import main
from sidlive.export.assembler import Program
from sidlive.export.encode import STREAMS, T_COPY, T_HOLD, T_WAIT, encode_best, encode_subtunes, stream_tokens
from sidlive.export.player import LOAD_ADDR, RAM_END, WRITE_SLOT_CYCLES, build_player
from sidlive.export.psidfile import ExportError, export_frames, psid_text
from sidlive.frames import NUM_REGS, PAL_FRAME_CYCLES, WRITE_ORDER, Frames, canonicalize, save


def synthetic(n: int, seed: int) -> np.ndarray:
    """(n, 25) canonical frames: random walks, holds (some > 255 frames), gate patterns
    (on/off, restarts marked by one gate-clear frame, test bit), repeated sections, and a
    voice replaying another voice's earlier part (cross-stream back-references)."""
    rng = np.random.default_rng(seed)
    regs = np.zeros((n, NUM_REGS), np.int64)
    cur = rng.integers(0, 256, NUM_REGS)
    k = 0
    while k < n:
        r = rng.random()
        if r < 0.15 and k > 64:  # repeat an earlier section
            length = int(rng.integers(8, 64))
            start = int(rng.integers(0, k - length)) if k > length else 0
            seg = regs[start:start + length].copy()
            if rng.random() < 0.5:  # voice 1's part played by voice 2 or 3
                dst = 7 * int(rng.integers(1, 3))
                seg[:, dst:dst + 7] = seg[:, 0:7]
            take = min(length, n - k)
            regs[k:k + take] = seg[:take]
            k += take
            cur = regs[k - 1].copy()
            continue
        if r < 0.17:  # a long hold
            hold = int(rng.integers(200, 700))
        elif r < 0.5:
            hold = int(rng.integers(1, 12))
        else:
            hold = 1
            for _ in range(int(rng.integers(1, 6))):
                reg = int(rng.integers(0, NUM_REGS))
                if rng.random() < 0.5:
                    cur[reg] = (cur[reg] + int(rng.integers(-6, 7))) % 256
                else:
                    cur[reg] = int(rng.integers(0, 256))
            for c in (0x04, 0x0B, 0x12):
                g = rng.random()
                if g < 0.15:
                    cur[c] ^= 0x01  # gate on/off
                elif g < 0.2:
                    cur[c] = int(rng.choice([0x09, 0x08, 0x41, 0x81, 0x11, 0x21, 0x15, 0x40]))
        take = min(hold, n - k)
        regs[k:k + take] = cur
        k += take
    return canonicalize(regs.astype(np.uint8))


def reference_play(image: bytes, prog: Program, subtune: int, n_frames: int) -> np.ndarray:
    """What the player writes to the SID on each of n_frames play calls, computed in Python
    from the image (a model of the 6502 code, for tests). Returns (n_frames, 25) uint8."""
    mem = bytearray(0x10000)
    mem[prog.origin:prog.origin + len(image)] = image
    sym = prog.symbols
    n_sub = len(range(sym["countlo"], sym["counthi"]))

    def restart():
        row = subtune * 4
        ptr = [mem[sym["startlo"] + row + s] | mem[sym["starthi"] + row + s] << 8 for s in range(4)]
        return ptr, [0] * 4, [0] * 4, [0] * 4, mem[sym["countlo"] + subtune] | mem[sym["counthi"] + subtune] << 8

    if not 0 <= subtune < n_sub:
        raise ValueError(f"subtune {subtune} outside 0..{n_sub - 1}")
    ptr, wait, copycnt, ret, count = restart()
    shadow = [0] * 28
    running = True
    out = np.zeros((n_frames, NUM_REGS), np.uint8)
    for f in range(n_frames):
        if running and count == 0 and mem[sym["loop"]]:
            ptr, wait, copycnt, ret, count = restart()
        if running and count == 0:
            running, shadow = False, [0] * 28
        elif running:
            count -= 1
            for s, (base, _) in enumerate(STREAMS):
                if wait[s]:
                    wait[s] -= 1
                    continue
                while True:
                    hdr = mem[ptr[s]]
                    ptr[s] += 1
                    if hdr == T_COPY:
                        target = mem[ptr[s]] | mem[ptr[s] + 1] << 8
                        copycnt[s], ret[s], ptr[s] = mem[ptr[s] + 2], ptr[s] + 3, target
                        continue
                    if hdr == T_WAIT:
                        wait[s] = mem[ptr[s]] - 1
                        ptr[s] += 1
                    else:
                        for b in range(7):
                            if hdr >> b & 1:
                                shadow[base + b] = mem[ptr[s]]
                                ptr[s] += 1
                        if hdr & T_HOLD:
                            wait[s] = mem[ptr[s]]
                            ptr[s] += 1
                    break
                if copycnt[s]:
                    copycnt[s] -= 1
                    if copycnt[s] == 0:
                        ptr[s] = ret[s]
        out[f] = shadow[:NUM_REGS]
    return out


def run_exported(sid_path, subtune: int, n_frames: int, clock: str = "PAL") -> np.ndarray:
    tune = load_psid(sid_path)
    res = run_psid(tune.data, tune.load_addr, tune.init_addr, tune.play_addr, subtune, n_frames,
                   speed_cia=tune.speed_cia(subtune + 1), clock=clock, mark_gate_retriggers=False)
    assert res.status == "ok", res.message
    return canonicalize(res.regs)


def test_stream_tokens_format():
    g = np.array([[1, 2, 3, 4]] * 3 + [[1, 9, 3, 4]] + [[1, 9, 3, 4]] * 300, np.uint8)
    toks = stream_tokens(g)
    # first frame: all 4 registers, then 2 frames held; frame 3: register 1 changes, held 255
    # more frames; then the rest of the run as a wait token
    assert toks == [bytes([0x8F, 1, 2, 3, 4, 2]), bytes([0x82, 9, 255]), bytes([0x00, 300 - 255])]


def test_synthetic_round_trip_through_the_6510(tmp_path):
    regs = synthetic(4000, seed=1)
    fr = Frames(regs=regs, title="synthetic", author="test")
    res = export_frames(fr, tmp_path / "s.sid", warn=pytest.fail)
    assert res.subtunes == 1 and res.frames == [4000]
    got = run_exported(tmp_path / "s.sid", 0, 4000 + 5)
    np.testing.assert_array_equal(got[:4000], regs)
    assert not got[4000:].any()  # end of song: every register 0


def test_back_references_are_used_and_decoded(tmp_path):
    regs = synthetic(3000, seed=2)
    enc = encode_best([regs])
    data, _ = enc.data(0)
    n_copies = int(sum(1 for i in range(len(enc.src)) if enc.src[i] >= 0))
    assert n_copies > 10
    assert enc.size() == len(data)
    prog, image = build_player(enc)
    np.testing.assert_array_equal(reference_play(image, prog, 0, 3000), regs)


@pytest.mark.parametrize("min_len", [1, 2, 5])
def test_reference_model_and_6510_agree_for_short_copies(min_len):
    regs = synthetic(1500, seed=10 + min_len)
    enc = encode_subtunes([regs], min_len=min_len)
    prog, image = build_player(enc)
    res = run_psid(image, prog.origin, prog.symbols["init"], prog.symbols["play"], 0, 1500,
                   speed_cia=False, mark_gate_retriggers=False)
    np.testing.assert_array_equal(res.regs, regs)
    np.testing.assert_array_equal(reference_play(image, prog, 0, 1500), regs)


def test_player_writes_like_the_renderer():
    """Call k writes frame k's changed registers (all 25 on the first call) in WRITE_ORDER,
    9 cycles apart, the first at the same cycle of every frame: the renderer's timing."""
    regs = synthetic(60, seed=12)
    regs[30] = regs[29]                                   # a frame with no change: no write
    prog, image = build_player(encode_best([regs]))
    res = run_psid(image, prog.origin, prog.symbols["init"], prog.symbols["play"], 0, 60,
                   speed_cia=False, mark_gate_retriggers=False, sid_log_capacity=60 * 30)
    w = res.sid_writes  # (n, 3): cycle from frame 0's sampling boundary, register, value
    call = w[:, 0] // PAL_FRAME_CYCLES + 1  # play call k runs in the frame before boundary k
    assert call.min() == 0 and res.sid_writes_lost == 0  # init writes nothing
    firsts = set()
    for k in range(60):
        changed = [r for r in WRITE_ORDER if k == 0 or regs[k, r] != regs[k - 1, r]]
        assert w[call == k, 1].tolist() == changed, k
        assert w[call == k, 2].tolist() == [regs[k, r] for r in changed]
        cyc = w[call == k, 0]
        if len(cyc):
            assert np.diff(cyc).tolist() == [WRITE_SLOT_CYCLES] * (len(cyc) - 1), k
            firsts.add(int(cyc[0] % PAL_FRAME_CYCLES))
    assert not (call == 30).any() and len(firsts) == 1, firsts


def test_subtunes_and_loop(tmp_path):
    parts = [synthetic(700, seed=3), synthetic(300, seed=4), synthetic(1, seed=5)]
    frames = [Frames(regs=p) for p in parts]
    res = export_frames(frames, tmp_path / "m.sid", loop=True, title="t", author="a", released="r")
    assert res.subtunes == 3 and load_psid(tmp_path / "m.sid").songs == 3
    for u, p in enumerate(parts):
        n = len(p)
        got = run_exported(tmp_path / "m.sid", u, 2 * n + 3)
        np.testing.assert_array_equal(got[:n], p)
        np.testing.assert_array_equal(got[n:2 * n], p)  # looped from the start
        np.testing.assert_array_equal(got[2 * n:], p[:3] if n >= 3 else np.repeat(p[:1], 3, axis=0))


def test_psid_header_fields(tmp_path):
    fr = Frames(regs=synthetic(50, seed=6), clock="NTSC", chip="8580", frame_rate_hz=1_022_727 / 17_095,
                title="T" * 40, author="Jörg Ü", extra={"released": "2025 sidlive"})
    warnings = []
    export_frames(fr, tmp_path / "h.sid", warn=warnings.append)
    t = load_psid(tmp_path / "h.sid")
    assert (t.magic, t.version, t.load_addr, t.songs, t.start_song) == ("PSID", 2, LOAD_ADDR, 1, 1)
    assert t.speed_bits == 0 and t.play_addr != 0 and t.clock == "NTSC" and t.chip == "8580"
    assert t.unsupported() is None and t.end_addr < RAM_END
    assert (t.title, t.author, t.released) == ("T" * 32, "Jörg Ü", "2025 sidlive")
    assert len(warnings) == 1 and "title" in warnings[0] and "32" in warnings[0]
    np.testing.assert_array_equal(run_exported(tmp_path / "h.sid", 0, 50, clock="NTSC"), fr.regs)


def test_text_is_latin1_and_cut_with_a_warning():
    warned = []
    assert psid_text("Ünïcödé ✓ ok", "title", warned.append) == "Ünïcödé ? ok"
    assert psid_text("x" * 33, "author", warned.append) == "x" * 32
    assert psid_text("plain", "released", warned.append) == "plain"
    assert len(warned) == 2 and "author" in warned[1]


def test_too_long_is_refused_with_the_longest_length_that_fits(tmp_path):
    rng = np.random.default_rng(7)
    regs = canonicalize(rng.integers(0, 256, (2600, NUM_REGS), dtype=np.uint8))  # incompressible
    fr = Frames(regs=regs, source="noise.regs")
    with pytest.raises(ExportError, match=r"longest that fits is (\d+) frames") as e:
        export_frames(fr, tmp_path / "x.sid", warn=lambda m: None)
    fit = int(e.value.args[0].split("longest that fits is ")[1].split()[0])
    assert 1000 < fit < 2600 and "--seconds" in str(e.value)
    export_frames(fr.slice(0, fit), tmp_path / "fit.sid", warn=lambda m: None)
    assert 0xC000 < LOAD_ADDR + len(load_psid(tmp_path / "fit.sid").data) <= RAM_END
    # the data runs under the BASIC ROM ($A000-$BFFF) and on to $CFFF: the player banks it in
    np.testing.assert_array_equal(run_exported(tmp_path / "fit.sid", 0, fit), regs[:fit])
    with pytest.raises(ExportError):
        export_frames(fr.slice(0, fit + 1), tmp_path / "x.sid", warn=lambda m: None)


def test_bad_inputs_are_refused(tmp_path):
    with pytest.raises(ExportError, match="frame rate 100.000 Hz"):
        export_frames(Frames(regs=np.zeros((5, 25), np.uint8), frame_rate_hz=100.0), tmp_path / "x.sid")
    with pytest.raises(ExportError, match="clock NTSC, but the first input is PAL"):
        export_frames([Frames(regs=np.zeros((5, 25), np.uint8)),
                       Frames(regs=np.zeros((5, 25), np.uint8), clock="NTSC", frame_rate_hz=59.826)],
                      tmp_path / "x.sid")


def test_cli(tmp_path, capsys):
    regs = synthetic(500, seed=8)
    save(Frames(regs=regs, title="cli"), tmp_path / "in.regs")
    assert main([str(tmp_path / "in.regs"), "-o", str(tmp_path / "out.sid"), "--seconds", "4",
                 "--author", "me"]) == 0
    assert "bytes/frame" in capsys.readouterr().out
    t = load_psid(tmp_path / "out.sid")
    assert (t.title, t.author) == ("cli", "me")
    n = int(round(4 * Frames(regs=regs).frame_rate_hz))
    np.testing.assert_array_equal(run_exported(tmp_path / "out.sid", 0, n), regs[:n])
    assert main([str(tmp_path / "in.regs"), "-o", str(tmp_path / "out.wav")]) == 2
    assert main([str(tmp_path / "missing.regs"), "-o", str(tmp_path / "o.sid")]) == 1


def test_real_tunes_round_trip_through_the_dumper(hvsc, tmp_path):
    from sidlive.c64.dump import dump_tune

    done = 0
    for rel in ("MUSICIANS/H/Hubbard_Rob/Food_Feud.sid", "MUSICIANS/J/JCH/James_Bond_Theme.sid"):
        path = hvsc / rel
        if not path.is_file():
            continue
        fr = dump_tune(path, seconds=10)
        res = export_frames(fr, tmp_path / "t.sid", warn=lambda m: None)
        again = dump_tune(tmp_path / "t.sid", seconds=len(fr) / fr.frame_rate_hz)
        np.testing.assert_array_equal(again.regs, fr.regs)
        assert res.bytes_per_frame < 8
        done += 1
    if not done:
        pytest.skip("neither test tune is in this HVSC subset")


@pytest.mark.skipif(shutil.which("sidplayfp") is None, reason="sidplayfp is not installed (Debian package sidplayfp)")
def test_sidplayfp_plays_the_export_like_the_renderer(tmp_path):
    from sidlive.audio.renderer import render
    from sidlive.measure.soundcheck import envelope_correlation, sidplayfp_render

    # a plain melody: pulse, sawtooth and triangle notes that decay, gate on/off, no filter
    n = 400
    regs = np.zeros((n, NUM_REGS), np.uint8)
    regs[:, 0x18] = 0x0F
    notes = [0x1167, 0x1389, 0x15ED, 0x1751, 0x1A13, 0x1D1E]
    for v, (wave, step) in enumerate(((0x41, 25), (0x21, 40), (0x11, 50))):
        c = 7 * v
        regs[:, c + 2], regs[:, c + 3] = 0x00, 0x08
        regs[:, c + 5], regs[:, c + 6] = 0x08, 0x00  # attack 2 ms, decay 300 ms, sustain 0
        for k in range(n):
            note = notes[(k // step + v) % len(notes)] >> v
            regs[k, c], regs[k, c + 1] = note & 0xFF, note >> 8
            regs[k, c + 4] = wave | (1 if k % step < step - 6 else 0)
    fr = Frames(regs=regs)
    export_frames(fr, tmp_path / "m.sid", warn=pytest.fail)
    secs = n / fr.frame_rate_hz
    ref = sidplayfp_render(tmp_path / "m.sid", secs, subtune=1, chip="6581")
    ours = render(fr, rate_hz=48_000)
    assert envelope_correlation(ours, ref, 48_000) >= 0.95


def test_init_acknowledges_interrupts_latched_before_it_returns():
    """A PSID driver latches a raster interrupt before init (sidplayfp: during its power-on
    delay); init must acknowledge it (VIC $D019, CIA 1 $DC0D) so the first play comes on
    the frame grid instead of at once after init. py65 runs init with both flags latched."""
    from py65.devices.mpu6502 import MPU
    from py65.memory import ObservableMemory

    regs = synthetic(50, seed=7)
    prog, image = build_player(encode_best([regs]))
    mem = ObservableMemory()
    mem[prog.origin:prog.origin + len(image)] = list(image)
    latched = {"vic": 0x01, "cia": 0x01}
    sid_writes = []

    def vic_write(addr, value):
        latched["vic"] &= ~value & 0x0F   # writing 1 to a flag bit clears it

    def cia_read(addr):
        latched["cia"] = 0                # reading the ICR clears it
        return 0

    mem.subscribe_to_write([0xD019], vic_write)
    mem.subscribe_to_read([0xDC0D], cia_read)
    mem.subscribe_to_write(range(0xD400, 0xD420), lambda a, v: sid_writes.append(a))
    mpu = MPU(memory=mem)
    mpu.sp = 0xFD
    mem[0x01FE], mem[0x01FF] = 0xFF, 0x0F   # init returns to $1000 (RTS adds 1)
    mpu.a, mpu.pc = 0, prog.symbols["init"]
    for _ in range(100_000):
        if mpu.pc == 0x1000:
            break
        mpu.step()
    assert mpu.pc == 0x1000, "init did not return"
    assert latched == {"vic": 0, "cia": 0} and not sid_writes


@pytest.mark.skipif(shutil.which("sidplayfp") is None, reason="sidplayfp is not installed (Debian package sidplayfp)")
@pytest.mark.parametrize("delay", [0, 2000])
def test_sidplayfp_first_play_is_on_the_frame_grid(tmp_path, delay):
    """sidplayfp's driver latches its raster interrupt before init, so a play routine is
    first called at once after init (off the grid by a delay-dependent amount: frame 0 then
    lasts e.g. 18,200 or 8,900 cycles instead of 19,656). The export's init drops that
    interrupt: the volume steps of calls 1, 2 and 3 lie one frame apart at any delay."""
    from sidlive.measure.soundcheck import sidplayfp_render

    regs = np.zeros((20, NUM_REGS), np.uint8)
    regs[1::2, 0x18] = 0x0F          # volume 0, 15, 0, ...: a DC step at every call (6581)
    export_frames(Frames(regs=regs, chip="6581"), tmp_path / "v.sid", warn=pytest.fail)
    x = sidplayfp_render(tmp_path / "v.sid", 0.25, subtune=1, chip="6581", delay_cycles=delay)
    step = np.abs(np.diff(x.astype(np.float64)))
    hits = np.nonzero(step > 0.3 * step.max())[0]
    edges = [hits[0]] + [b for a, b in zip(hits[:-1], hits[1:]) if b - a > 20]
    # edges[0]: the driver's own volume 15 before init; then play calls 1, 2, 3. Call 1
    # writes all 25 registers ($18 in slot WRITE_ORDER.index(0x18)), later calls only $18.
    cycles = np.diff(edges[1:4]) * (985_248 / 48_000)
    want = [PAL_FRAME_CYCLES - WRITE_ORDER.index(0x18) * WRITE_SLOT_CYCLES, PAL_FRAME_CYCLES]
    assert np.all(np.abs(cycles - want) < 45), cycles


def test_an_export_dumps_and_renders_for_the_frames_it_holds(tmp_path):
    """`sidlive render X.sid` of an export plays its frames, not the 180 s default."""
    from sidlive.c64.dump import dump_tune
    from sidlive.c64.psid import exported_frames, load_psid
    rng = np.random.default_rng(4)
    a = canonicalize(rng.integers(0, 256, (700, 25)).astype(np.uint8))
    b = canonicalize(rng.integers(0, 256, (300, 25)).astype(np.uint8))
    export_frames([Frames(regs=a), Frames(regs=b)], tmp_path / "x.sid", title="t", author="a", released="r")
    tune = load_psid(tmp_path / "x.sid")
    assert exported_frames(tune.data, 1) == 700 and exported_frames(tune.data, 2) == 300
    assert exported_frames(tune.data, 3) is None and exported_frames(b"no mark here", 1) is None
    fr = dump_tune(tmp_path / "x.sid")
    assert fr.extra["seconds_from"] == "sidlive export" and len(fr) == 700
    assert len(dump_tune(tmp_path / "x.sid", subtune=2)) == 300
