"""Render SID register frames to audio with reSID (pyresidfp), in blocks of any size.

One `Renderer` serves offline rendering (`render_frames`) and the live audio callback
(`read_into`, which fills a caller-provided buffer). Per frame it:

1. takes the next frame from its source (a `Frames`, or a callable that returns the next
   25 register values or None when none is ready: then the last register state holds);
2. writes the registers that changed since the previous frame, in `frames.WRITE_ORDER`,
   `WRITE_GAP_CYCLES` (9) cycles apart as a player's LDA/STA pairs are (the cycles
   between count as the frame's own, so its length stays exact):
   every register ascending, then the control registers $04/$0B/$12 last, so a gate or
   waveform change lands after that voice's pitch, pulse width and ADSR are in place.
   Writing only changes is equivalent to writing all 25: a SID register write of the
   value already there changes nothing (the control register acts on bit *changes*:
   gate edge, test bit, sync/ring), so skipping it is exact and saves the calls;
3. clocks exactly the frame's cycles (19,656 for PAL, 17,095 for NTSC): never rounded
   to a sample boundary, so the music's timing is exact in SID cycles. The cycles are
   clocked in `subframes` steps (default 4: ~5 ms each), lazily, as output is asked for,
   so a mute or `gate_off` made between two blocks is heard from the next step on (the
   live daemon's "within one block"), not a whole frame later. Where the steps fall is
   fixed by the cycle count, so the output does not depend on the block sizes.

Sample accounting (exact, no drift over any length) and the resampler: sidlive/audio/resample.py.

Determinism: two pyresidfp instances fed the same writes differ by a few LSB (about
-80 dBFS, from state it leaves uninitialised), so renders repeat to within that, not
bit for bit. Its resampler also starts with garbage in its buffer: `reset` clocks
WARMUP_CYCLES of silence first so no render starts with a full-scale click.

Hot path (`read_into`): no numpy allocation per block; per frame, pyresidfp's `clock`
returns a Python list (its API; unavoidable), copied into a preallocated buffer.
Not thread-safe: one consumer (the audio callback) calls `read_into`.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np
from pyresidfp._pyresidfp import SID, ChipModel, SamplingMethod

from sidlive.audio.resample import TAPS, RateLock, apply_fade, interpolate, interpolate_gil, sinc_table
from sidlive.frames import (CHIPS, CLOCKS, CONTROL_REGS, NTSC_CLOCK_HZ, NTSC_FRAME_CYCLES, NUM_REGS, PAL_CLOCK_HZ,
                            PAL_FRAME_CYCLES, WRITE_ORDER, Frames, frame_sample_boundary)

RATE_MIN_HZ, RATE_MAX_HZ = 22_050, 96_000
SAMPLING_METHODS = ("resample", "decimate")
CLOCK_PARAMS = {"PAL": (PAL_CLOCK_HZ, PAL_FRAME_CYCLES), "NTSC": (NTSC_CLOCK_HZ, NTSC_FRAME_CYCLES)}

SUBFRAMES = 4                 # clock steps per frame (mutes act at the next step: ~5 ms)
SUBFRAMES_MAX = 16
# Cycles between two register writes of one frame: a player's LDA abs,Y / STA abs,X pair,
# the commonest spacing measured in HVSC players (40% of consecutive writes; median 12).
# Writing them all in the same cycle, which no 6510 can, changes reSID's envelopes: a
# gate-on then reaches the rate counter before it has run past the new ADSR period, so
# ADSR-delay-bug outcomes (hard restarts) differ from every real player's.
WRITE_GAP_CYCLES = 9
WRITE_GAP_MAX = 40            # 24 gaps must fit in the shortest step (NTSC / 16)
_IN_CAP = 16_384
_IN_PAD = 128                 # zeros before reSID's first sample (start-up reads)
# pyresidfp leaves its resampler's ring buffer uninitialised (new instance or reset):
# the first ~100 samples can be full-scale garbage. Clocking this many cycles of
# silence at reset, output discarded, flushes it.
WARMUP_CYCLES = 65_536
FADE_SAMPLES_PER_KHZ = 2     # panic: the output fades to zero (and back on resume) over 2 ms

FrameSource = Callable[[], "np.ndarray | Iterable[int] | None"]


def _check_choice(name: str, value, allowed) -> str:
    s = str(value)
    if s not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return s


def _check_int(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}; got {value!r}")
    return int(value)


def _check_voices(name: str, voices) -> frozenset:
    try:
        out = frozenset(int(v) for v in voices)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be voice numbers in 1..3; got {voices!r}") from None
    bad = sorted(v for v in out if not 1 <= v <= 3)
    if bad:
        raise ValueError(f"{name}: voice {bad[0]} is out of range; allowed 1..3")
    return out


class Renderer:
    """reSID renderer: register frames in, int16/float32 samples out, any block size.

    Renderer(source=None, *, chip="6581", rate_hz=48000, muted_voices=(),
             filter_enabled=True, clock="PAL", sampling="resample", subframes=4)

    source: a `Frames` (played once; afterwards its last frame holds), a callable
    returning the next frame (25 register values as an array, sequence or bytes; or None:
    no frame ready, hold the last state), or None (hold).
    rate_hz: 22050..96000; muted_voices: subset of 1..3; sampling: reSID's "resample"
    (band-limited, default) or "decimate" (faster, aliases); clock "PAL" or "NTSC";
    subframes: 1..16 clock steps per frame (a mute, filter or gate_off takes effect at
    the next step). Renders with the same subframes match sample for sample.
    release_gil: False keeps the GIL during the resampler kernel (the live audio callback).
    write_gap_cycles: 0..40 cycles between a frame's register writes (default 9, as a
    player writes them; 0 writes them all in the frame's first cycle).
    """

    def __init__(self, source: Frames | FrameSource | None = None, *, chip: str = "6581",
                 rate_hz: int = 48_000, muted_voices: Iterable[int] = (),
                 filter_enabled: bool = True, clock: str = "PAL",
                 sampling: str = "resample", subframes: int = SUBFRAMES, release_gil: bool = True,
                 write_gap_cycles: int = WRITE_GAP_CYCLES):
        self.chip = _check_choice("chip", chip, CHIPS)
        self.clock = _check_choice("clock", clock, CLOCKS)
        self.sampling = _check_choice("sampling", sampling, SAMPLING_METHODS)
        self.rate_hz = _check_int("rate_hz", rate_hz, RATE_MIN_HZ, RATE_MAX_HZ)
        self.clock_hz, self.cycles_per_frame = CLOCK_PARAMS[self.clock]
        self.muted_voices = _check_voices("muted_voices", muted_voices)
        self.filter_enabled = bool(filter_enabled)
        self.subframes = _check_int("subframes", subframes, 1, SUBFRAMES_MAX)
        self.write_gap_cycles = _check_int("write_gap_cycles", write_gap_cycles, 0, WRITE_GAP_MAX)
        self._kernel = interpolate if release_gil else interpolate_gil
        self._n_fade = max(1, FADE_SAMPLES_PER_KHZ * self.rate_hz // 1000)
        # Cycle offset of each step's start within a frame, and the frame's end.
        self._step_cycles = [j * self.cycles_per_frame // self.subframes for j in range(self.subframes + 1)]
        self.max_frame_samples = -(-self.cycles_per_frame * self.rate_hz // self.clock_hz)
        self._table = sinc_table()
        self._in = np.zeros(_IN_CAP, dtype=np.float32)
        self._frame_out = np.zeros(self.max_frame_samples, dtype=np.float32)
        self._scratch = np.zeros(self.max_frame_samples, dtype=np.float32)
        self._lock = RateLock()
        self._regs = np.zeros(NUM_REGS, dtype=np.uint8)
        # Called with no arguments inside read_into before each clocked step (None: not);
        # a mute or gate_off it makes is heard from that step on. `out_position` is then
        # the step's first output sample.
        self.step_hook: Callable[[], None] | None = None
        self.set_source(source)
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Back to power-on: a new SID, buffers empty, frame 0 of the source.

        A new pyresidfp instance rather than its `reset()`, which leaves filter and
        resampler state behind."""
        self._sid = SID(ChipModel.MOS6581 if self.chip == "6581" else ChipModel.MOS8580,
                        SamplingMethod.RESAMPLE if self.sampling == "resample" else SamplingMethod.DECIMATE,
                        float(self.clock_hz), float(self.rate_hz))
        self._sid.clock(WARMUP_CYCLES)
        self._sid.enable_filter(self.filter_enabled)
        for v in (1, 2, 3):
            self._sid.mute(v - 1, v in self.muted_voices)
        self._regs[:] = 0
        self._written_once = False
        self._fade_k = self._n_fade   # output gain k / n_fade: 1 until a panic
        self._fade_dir = 0
        self._in[:_IN_PAD] = 0.0
        self._in_base = -_IN_PAD     # absolute input index of self._in[0]
        self._in_len = _IN_PAD
        self._in_total = 0           # reSID samples produced
        self._lock.reset()
        self._out_len = 0
        self._out_pos = 0
        self.frames_rendered = 0     # frames started (their first step clocked)
        self.samples_out = 0
        self.out_position = 0        # samples handed out, counting the current read_into so far
        self._frame_index = 0
        self._step = 0               # next step within the frame, 0..subframes-1
        self._step_end_sample = 0    # output sample where the last clocked step ends

    def set_source(self, source: Frames | FrameSource | None) -> None:
        """Switch the frame source; frame counting and SID state carry on."""
        if source is not None and not isinstance(source, Frames) and not callable(source):
            raise TypeError(f"source must be a Frames, a callable or None; got {type(source).__name__}")
        self._source = source
        self._frame_index = 0

    def set_mute(self, voice: int, muted: bool) -> None:
        """Mute/unmute voice 1..3 now. reSIDfp applies a mute when the voice's control
        register is next written, so the current value is written again (same value: no
        gate or test-bit edge, only the mute takes hold)."""
        (v,) = _check_voices("voice", [voice])
        self.muted_voices = (self.muted_voices | {v}) if muted else (self.muted_voices - {v})
        self._sid.mute(v - 1, bool(muted))
        if self._written_once:
            ctrl = CONTROL_REGS[v - 1]
            self._sid.write(ctrl, int(self._regs[ctrl]))

    def gate_off(self) -> None:
        """Panic: clear every voice's gate bit now (each voice goes into release), heard
        from the next step. The register state keeps the cleared bits, so a following
        frame with the gate set starts a new note."""
        for ctrl in CONTROL_REGS:
            value = int(self._regs[ctrl]) & 0xFE
            self._regs[ctrl] = value
            self._sid.write(ctrl, value)

    def panic(self) -> None:
        """Silence: gates off, fastest release; the output fades to 0 within 2 ms of the next step until `resume`."""
        self.gate_off()
        for ctrl in CONTROL_REGS:
            sr = ctrl + 2
            value = int(self._regs[sr]) & 0xF0
            self._regs[sr] = value
            self._sid.write(sr, value)
        self._fade_dir = -1

    def resume(self) -> None:
        """After a panic: the output fades back in over 2 ms from the next step."""
        self._fade_dir = 1

    def set_filter(self, enabled: bool) -> None:
        """Switch the SID filter emulation on or off."""
        self.filter_enabled = bool(enabled)
        self._sid.enable_filter(self.filter_enabled)

    @property
    def registers(self) -> np.ndarray:
        """The register state last written, (25,) uint8 (a copy)."""
        return self._regs.copy()

    @property
    def next_step_sample(self) -> int:
        """Output sample where the next clocked step begins: a mute or gate_off made now
        is heard from about here (plus the resampler's LOCK_DELAY - TAPS/2 samples)."""
        return self._step_end_sample

    @property
    def exhausted(self) -> bool:
        """True when a `Frames` source has no frames left (its last state now holds)."""
        return isinstance(self._source, Frames) and self._frame_index >= len(self._source)

    @property
    def ratio(self) -> float:
        """reSID input samples per output sample, as locked (about 1.0002 for RESAMPLE)."""
        return self._lock.ratio

    def samples_for_frames(self, n_frames: int) -> int:
        """Output samples from now to the end of the next `n_frames` frames."""
        if n_frames < 0:
            raise ValueError(f"n_frames must be >= 0; got {n_frames}")
        end = frame_sample_boundary(self.frames_rendered + n_frames, self.rate_hz,
                                    self.cycles_per_frame, self.clock_hz)
        return end - self.samples_out

    # ------------------------------------------------------------------ output

    def read_into(self, out: np.ndarray) -> int:
        """Fill `out` ((N,) or (N, channels); int16 or float32 in [-1, 1)) with the next N
        samples (every channel the same). Renders frames as needed; returns N."""
        if out.dtype not in (np.int16, np.float32):
            raise TypeError(f"out must be int16 or float32; got {out.dtype}")
        if out.ndim == 2:
            n = self.read_into(out[:, 0])
            for c in range(1, out.shape[1]):
                out[:, c] = out[:, 0]
            return n
        if out.ndim != 1:
            raise ValueError(f"out must be 1-D or 2-D (frames, channels); got shape {out.shape}")
        n = out.shape[0]
        done = 0
        while done < n:
            if self._out_pos >= self._out_len:
                hook = self.step_hook
                if hook is not None:     # before each clocked step (the live engine takes MIDI here)
                    self.out_position = self.samples_out + done
                    hook()
                self._render_step()
            take = min(n - done, self._out_len - self._out_pos)
            src = self._frame_out[self._out_pos:self._out_pos + take]
            dst = out[done:done + take]
            if out.dtype == np.int16:
                tmp = self._scratch[:take]
                np.rint(src, out=tmp)
                np.clip(tmp, -32768.0, 32767.0, out=tmp)
                dst[:] = tmp
            else:
                np.multiply(src, np.float32(1.0 / 32768.0), out=dst)
            self._out_pos += take
            done += take
        self.samples_out += n
        self.out_position = self.samples_out
        return n

    def read(self, n_samples: int, dtype=np.int16) -> np.ndarray:
        """The next `n_samples` as a new array (allocates: not for the audio callback)."""
        if n_samples < 0:
            raise ValueError(f"n_samples must be >= 0; got {n_samples}")
        out = np.empty(int(n_samples), dtype=dtype)
        self.read_into(out)
        return out

    def render_frames(self, n_frames: int, dtype=np.int16) -> np.ndarray:
        """Render the next `n_frames` frames; returns exactly their samples."""
        return self.read(self.samples_for_frames(n_frames), dtype=dtype)

    # ------------------------------------------------------------------ one frame

    def _next_frame(self):
        src = self._source
        if src is None:
            return None
        if isinstance(src, Frames):
            if self._frame_index >= len(src):
                return None
            row = src.regs[self._frame_index]
            self._frame_index += 1
            return row
        row = src()
        if row is None:
            return None
        row = np.frombuffer(row, np.uint8) if isinstance(row, (bytes, bytearray, memoryview)) \
            else np.asarray(row)
        if row.shape != (NUM_REGS,):
            raise ValueError(f"frame source returned shape {row.shape} at frame "
                             f"{self.frames_rendered}; expected ({NUM_REGS},) register values")
        if row.dtype != np.uint8:
            if row.min() < 0 or row.max() > 255:
                raise ValueError(f"frame source returned a register value outside 0..255 "
                                 f"at frame {self.frames_rendered}")
            row = row.astype(np.uint8)
        return row

    def _write(self, row: np.ndarray) -> int:
        """Write the changed registers, `write_gap_cycles` apart; returns the cycles
        clocked between them (their samples are already in the input FIFO)."""
        regs = self._regs
        sid = self._sid
        gap = self.write_gap_cycles
        first = not self._written_once
        used = -gap   # no gap before the first write
        for r in WRITE_ORDER:
            v = row[r]
            if first or v != regs[r]:
                if used >= 0 and gap:
                    self._push(sid.clock(gap))
                used += gap
                sid.write(r, int(v))
                regs[r] = v
        self._written_once = True
        return max(used, 0)

    def _push(self, samples) -> None:
        """Append reSID's samples (a list) to the input FIFO."""
        n = len(samples)
        if self._in_len + n > _IN_CAP:
            self._compact()
        self._in[self._in_len:self._in_len + n] = samples
        self._in_len += n
        self._in_total += n

    def _render_step(self) -> None:
        j = self._step
        used = 0
        if j == 0:   # a frame starts: its registers go in from its first cycle on
            row = self._next_frame()
            if row is not None:
                used = self._write(row)
            self.frames_rendered += 1
        c0, c1 = self._step_cycles[j], self._step_cycles[j + 1]
        self._push(self._sid.clock(c1 - c0 - used))
        num = ((self.frames_rendered - 1) * self.cycles_per_frame + c1) * self.rate_hz
        end = num // self.clock_hz
        frac = (num % self.clock_hz) / self.clock_hz
        m = end - self._step_end_sample
        start, step = self._lock.advance(self._in_total, m, frac)
        self._kernel(self._in, self._in_base, start, step, m, self._table, self._frame_out)
        if self._fade_dir != 0 or self._fade_k != self._n_fade:   # a panic's silence, or its fade
            self._fade_k = apply_fade(self._frame_out[:m], self._fade_k, self._fade_dir, self._n_fade)
        self._out_len = m
        self._out_pos = 0
        self._step_end_sample = end
        self._step = (j + 1) % self.subframes

    def _compact(self) -> None:
        """Drop input samples the resampler will not read again."""
        if self._lock.pos is None:
            return
        keep_from = int(math.floor(self._lock.pos)) - TAPS - self._in_base
        keep_from = max(0, min(keep_from, self._in_len))
        tail = self._in_len - keep_from
        self._in[:tail] = self._in[keep_from:self._in_len]
        self._in_base += keep_from
        self._in_len = tail


def render(frames: Frames, *, chip: str | None = None, rate_hz: int = 48_000,
           muted_voices: Iterable[int] = (), filter_enabled: bool = True,
           sampling: str = "resample", subframes: int = SUBFRAMES,
           write_gap_cycles: int = WRITE_GAP_CYCLES) -> np.ndarray:
    """Render a whole `Frames` to int16 mono samples (chip defaults to the frames' own)."""
    r = Renderer(frames, chip=chip or frames.chip, rate_hz=rate_hz, muted_voices=muted_voices,
                 filter_enabled=filter_enabled, clock=frames.clock, sampling=sampling,
                 subframes=subframes, write_gap_cycles=write_gap_cycles)
    return r.render_frames(len(frames))
