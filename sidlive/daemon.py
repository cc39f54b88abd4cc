"""The audio side of `sidlive live`: ring -> Renderer -> output, and the outputs themselves.

`AudioEngine.callback(outdata, frames, time_info, status)` is the sounddevice callback
(also driven by `NullOutput`, a paced thread, when there is no device or JACK died). Per
block it: counts PortAudio's output_underflow flag; applies a new control snapshot if the
control thread swapped one in (`published`, one reference: mutes/solo via
Renderer.set_mute, panic via Renderer.gate_off, master gain); answers a pending ring
rollback (`FrameRing.service`); renders the block (the Renderer asks `_source` for a frame
at each 50.125 Hz boundary: a ring pop, or on an empty ring the last frame again, counted
as an underrun); scales to float32 for the device and hands the int16 samples and every
frame started to the Recorder. It allocates no arrays (only numpy views and small ints),
takes no lock, prints nothing and touches no file.

Measurement hooks (preallocated, written by the callback, read by other threads):
`frame_dac[pos % N]`: when ring position pos starts sounding (perf_counter clock, mapped
from the stream's time info); `ev`/`ev_dac`: applied control snapshots, mutes and panics
with the block's first sample (for replaying the take) and when the change is heard;
`cb_hist`: callback durations in 10 us bins.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from sidlive.controls import ControlState
from sidlive.frames import CANON_MASK, CONTROL_REGS, NUM_REGS
from sidlive.renderer import Renderer, frame_sample_boundary

EV_STATE, EV_MUTE, EV_PANIC = 1, 2, 3
EV_NAMES = {EV_STATE: "state", EV_MUTE: "renderer.mute", EV_PANIC: "renderer.panic"}
N_EVENTS = 4096
N_FRAME_LOG = 1 << 16
HIST_BIN_S = 1e-5
HIST_BINS = 5000            # 0..50 ms
MAX_BLOCK = 8192
REC_SCALE = 1.0 / 32767.0   # Recorder/WavWriter scale floats by 32767: this gives back the int16 exactly
_C1, _C2, _C3 = CONTROL_REGS


class AudioEngine:
    """The consumer side: one per session; `callback` runs on the audio thread only."""

    def __init__(self, ring, *, chip: str = "6581", rate_hz: int = 48_000, block_frames: int = 256,
                 subframes: int = 4, recorder=None, state: ControlState | None = None):
        self.ring = ring
        self.rate_hz = int(rate_hz)
        self.block_frames = int(block_frames)
        self.recorder = recorder
        self.renderer = Renderer(self._source, chip=chip, rate_hz=rate_hz, subframes=subframes, release_gil=False)
        Renderer(None, chip=chip, rate_hz=rate_hz, subframes=subframes, release_gil=False).read(block_frames)  # load Numba's cache now
        self._cycles = self.renderer.cycles_per_frame
        self._clock_hz = self.renderer.clock_hz
        self._row = np.zeros(NUM_REGS, np.uint8)
        self._i16 = np.zeros(MAX_BLOCK, np.int16)
        self._f32 = np.zeros(MAX_BLOCK, np.float32)
        self._rec = np.zeros(MAX_BLOCK, np.float32)
        self._i16b, self._f32b, self._recb = (a[:self.block_frames] for a in (self._i16, self._f32, self._rec))
        state = state or ControlState()
        self.published = (0, state, 0.0)   # (seq, ControlState, perf time): swapped by the control thread
        self._applied = None
        self._voice_on = [True, True, True]
        self._panic = state.panic
        self._masking = False
        self.panic_cut = (state.panic, 0)  # (panic count, first ring position generated after it)
        self._scale = 1.0 / 32768.0
        self._dac0 = 0.0
        self.dac_offset_s = 0.0        # the device's output latency as its time info reports it
        self._block_start = 0
        # Counters (single writer: the audio thread).
        self.blocks = 0
        self.samples = 0
        self.audio_underruns = 0       # blocks PortAudio flagged output_underflow
        self.underrun_blocks = np.full(64, -1, np.int64)   # block index of the first 64 of them
        self.oversize_blocks = 0       # blocks larger than MAX_BLOCK (silence, never raised)
        self.frames_played = 0
        self.cb_hist = np.zeros(HIST_BINS, np.int64)
        self.cb_max_s = 0.0
        self.cb_total_s = 0.0
        self.last_callback_perf = 0.0
        self.first_frame_dac = 0.0     # 0 until the first generated frame sounds
        self.frame_dac = np.zeros(N_FRAME_LOG, np.float64)
        self.frame_pos = np.full(N_FRAME_LOG, -1, np.int64)
        self.ev = np.zeros((N_EVENTS, 6), np.int64)   # seq, kind, a, b, block start sample, heard sample
        self.ev_dac = np.zeros(N_EVENTS, np.float64)
        self.ev_w = 0

    # ------------------------------------------------------------------ audio thread
    def callback(self, outdata, frames, time_info, status) -> None:
        t0 = time.perf_counter()
        if status.output_underflow:
            if self.audio_underruns < len(self.underrun_blocks):
                self.underrun_blocks[self.audio_underruns] = self.blocks
            self.audio_underruns += 1
        self.dac_offset_s = time_info.outputBufferDacTime - time_info.currentTime
        self._dac0 = t0 + self.dac_offset_s
        self._block_start = self.samples
        pub = self.published
        if pub is not self._applied:
            self._apply(pub)
        self.ring.service()
        if frames == self.block_frames:
            i16, f32, rec = self._i16b, self._f32b, self._recb
        elif frames <= MAX_BLOCK:
            i16, f32, rec = self._i16[:frames], self._f32[:frames], self._rec[:frames]
        else:
            self.oversize_blocks += 1
            outdata.fill(0)
            return
        self.renderer.read_into(i16)
        np.multiply(i16, self._scale, out=f32, dtype=np.float32)
        for c in range(outdata.shape[1]):
            outdata[:, c] = f32
        if self.recorder is not None:
            np.multiply(i16, REC_SCALE, out=rec, dtype=np.float32)
            self.recorder.write_block(rec)
        self.samples += frames
        self.blocks += 1
        t1 = time.perf_counter()
        dt = t1 - t0
        self.last_callback_perf = t1
        b = int(dt / HIST_BIN_S)
        self.cb_hist[b if b < HIST_BINS else HIST_BINS - 1] += 1
        if dt > self.cb_max_s:
            self.cb_max_s = dt
        self.cb_total_s += dt

    def _source(self):
        """Renderer's frame source, called at each frame boundary inside read_into."""
        ring = self.ring
        pos = ring.read_pos
        row = self._row
        if ring.pop_into(row):
            if self._masking:   # frames generated before the panic: gates stay off
                pc = self.panic_cut
                if pc[0] >= self._panic and pos >= pc[1]:
                    self._masking = False
                else:
                    row[_C1] &= 0xFE
                    row[_C2] &= 0xFE
                    row[_C3] &= 0xFE
            k = self.renderer.frames_rendered
            start = frame_sample_boundary(k, self.rate_hz, self._cycles, self._clock_hz)
            dac = self._dac0 + (start - self._block_start) / self.rate_hz
            i = pos % N_FRAME_LOG
            self.frame_dac[i] = dac
            self.frame_pos[i] = pos
            self.frames_played += 1
            if self.first_frame_dac == 0.0:
                self.first_frame_dac = dac
        if self.recorder is not None:
            self.recorder.write_frame(row)   # every frame, a held one too: the take replays exactly
        return row

    def _apply(self, pub) -> None:
        seq, state, _ = pub
        on = state.voice_on
        r = self.renderer
        for i in range(3):
            if on[i] != self._voice_on[i]:
                self._voice_on[i] = on[i]
                r.set_mute(i + 1, not on[i])
                self._event(EV_MUTE, seq, i + 1, 0 if on[i] else 1)
        if state.panic != self._panic:
            self._panic = state.panic
            r.gate_off()
            self._masking = True
            self._event(EV_PANIC, seq, state.panic, 0)
        self._scale = state.gain / 32768.0
        self._event(EV_STATE, seq, 0, 0)
        self._applied = pub

    def _event(self, kind: int, seq: int, a: int, b: int) -> None:
        w = self.ev_w
        i = w % N_EVENTS
        ev = self.ev
        heard = self.renderer.next_step_sample
        ev[i, 0] = seq
        ev[i, 1] = kind
        ev[i, 2] = a
        ev[i, 3] = b
        ev[i, 4] = self.samples
        ev[i, 5] = heard
        self.ev_dac[i] = self._dac0 + (heard - self._block_start) / self.rate_hz
        self.ev_w = w + 1

    # ------------------------------------------------------------------ other threads
    def read_events(self, since: int) -> tuple[list[tuple], int, int]:
        """Events written since index `since`: ([(seq, kind, a, b, sample, heard, dac)], new
        index, events lost because the reader fell behind)."""
        w = self.ev_w
        lost = max(0, w - since - N_EVENTS)
        start = since + lost
        out = []
        for j in range(start, w):
            i = j % N_EVENTS
            row = self.ev[i]
            out.append((int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]), int(row[5]),
                        float(self.ev_dac[i])))
        return out, w, lost

    def frame_sound_time(self, pos: int) -> float | None:
        """perf_counter time when ring position pos started sounding, None if not (yet/any more)."""
        i = pos % N_FRAME_LOG
        return float(self.frame_dac[i]) if self.frame_pos[i] == pos else None

    def callback_percentile_ms(self, q: float) -> float:
        n = int(self.cb_hist.sum())
        if n == 0:
            return 0.0
        k = int(np.searchsorted(np.cumsum(self.cb_hist), q / 100.0 * n))
        return round((k + 1) * HIST_BIN_S * 1e3, 3)


# ---------------------------------------------------------------------------- outputs

class _TimeInfo:
    __slots__ = ("currentTime", "outputBufferDacTime")

    def __init__(self):
        self.currentTime = 0.0
        self.outputBufferDacTime = 0.0


class _Status:
    __slots__ = ("output_underflow",)

    def __init__(self):
        self.output_underflow = False


class NullOutput:
    """No device: a thread calls the callback every block at the audio rate (absolute
    deadlines; a block more than 100 ms late resynchronises and counts in `late`)."""

    name = "null"

    def __init__(self, callback, rate_hz: int = 48_000, block_frames: int = 256, channels: int = 1):
        self.callback = callback
        self.rate_hz = rate_hz
        self.block_frames = block_frames
        self._out = np.zeros((block_frames, channels), np.float32)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.late = 0
        self.latency_s = block_frames / rate_hz
        self.error: BaseException | None = None

    def start(self) -> "NullOutput":
        self._thread = threading.Thread(target=self._run, name="sidlive-null-audio", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        period = self.block_frames / self.rate_hz
        ti, st = _TimeInfo(), _Status()
        t_next = time.perf_counter()
        try:
            while not self._stop.is_set():
                now = time.perf_counter()
                if now < t_next:
                    time.sleep(t_next - now)
                    now = time.perf_counter()
                elif now - t_next > 0.1:
                    self.late += 1
                    t_next = now
                ti.currentTime = now
                ti.outputBufferDacTime = t_next + period
                self.callback(self._out, self.block_frames, ti, st)
                t_next += period
        except BaseException as e:  # noqa: BLE001 - reported by the daemon's watchdog
            self.error = e

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


class StreamOutput:
    """A sounddevice OutputStream (JACK or ALSA through PortAudio). After `abandon()` (the
    server died) the callback outputs silence and the stream is never closed: closing a
    stream whose JACK server is gone blocks forever inside libjack."""

    def __init__(self, callback, device: int, rate_hz: int = 48_000, block_frames: int = 256,
                 channels: int = 1, name: str = ""):
        import sounddevice as sd

        self.callback = callback
        self.dead = False
        self.name = name or str(device)
        self.stream = sd.OutputStream(samplerate=rate_hz, blocksize=block_frames, channels=channels,
                                      dtype="float32", latency="low", device=device, callback=self._cb)
        self.latency_s = float(self.stream.latency)

    def _cb(self, outdata, frames, time_info, status) -> None:
        if self.dead:
            outdata.fill(0)
            return
        self.callback(outdata, frames, time_info, status)

    def start(self) -> "StreamOutput":
        self.stream.start()
        return self

    @property
    def active(self) -> bool:
        return not self.dead and bool(self.stream.active)

    def abandon(self) -> None:
        self.dead = True

    def stop(self) -> None:
        if self.dead:
            return
        self.stream.stop()
        self.stream.close()


# ---------------------------------------------------------------------------- generator thread

class GenRequest:
    """What the generator thread should be doing; built by the control thread, handed over
    by one reference swap (`GeneratorThread.request = req`)."""

    __slots__ = ("seq", "temperature", "top_k", "top_p", "composer", "seed", "loop", "loop_key", "mode",
                 "panic", "lookahead_frames")

    def __init__(self, seq, temperature, top_k, top_p, composer, seed, loop, loop_key, mode, panic,
                 lookahead_frames):
        self.seq, self.temperature, self.top_k, self.top_p = seq, temperature, top_k, top_p
        self.composer, self.seed, self.loop, self.loop_key, self.mode = composer, seed, loop, loop_key, mode
        self.panic, self.lookahead_frames = panic, lookahead_frames

    def sampling(self) -> tuple:
        return self.temperature, self.top_k, self.top_p, self.composer


class GeneratorThread:
    """Keeps `lookahead_frames` frames in the ring, canonical (frames.CANON_MASK: the bits
    the SID ignores cleared, as a recorded .regs loads; the renderer writes only changed
    registers, a player's cycles apart, so a take replays exactly only if the frames
    written are the frames recorded). A request that changes generation
    (sampling, seed, loop, panic) rolls the ring back to the playhead + keep_frames and
    regenerates from there; prime-mode loops are primed on a shadow Generator in a worker
    thread (a 512-frame prime takes ~0.1 s, longer than the lookahead) and swapped in."""

    def __init__(self, gen, ring, engine: AudioEngine, arrangement, *, keep_frames: int = 1,
                 history_frames: int = 1024, min_rollback_interval_s: float = 0.01, on_error=None):
        self.gen = gen
        self.ring = ring
        self.engine = engine
        self.arrangement = arrangement
        self.keep_frames = int(keep_frames)
        self.min_rollback_interval_s = float(min_rollback_interval_s)
        self.on_error = on_error or (lambda text: None)
        self.hist = np.zeros((history_frames, NUM_REGS), np.uint8)   # (H, 25) frames by ring position
        self.offset = 0              # generator timeline length - ring write position
        self.request: GenRequest | None = None
        self.wake = threading.Event()
        self._applied: GenRequest | None = None
        self._one = np.zeros((1, NUM_REGS), np.uint8)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_rollback = 0.0
        # shadow priming
        self._shadow = None
        self._job = None             # (loop, key) wanted
        self._ready = None           # key primed into the shadow, waiting for the swap
        self._job_event = threading.Event()
        self._worker: threading.Thread | None = None
        # figures
        self.frames_generated = 0
        self.busy_s = 0.0
        self.rollback_log: list[tuple[int, int, float]] = []   # (request seq, cut, perf time)
        self.primes = 0
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ setup (caller's thread)
    def set_context(self, frames: np.ndarray | None) -> None:
        """Before start: the timeline becomes `frames` (or one zero frame) at ring position 0."""
        self.gen.reset()
        ctx = self._context(frames)
        self.gen.prime(ctx)
        self.offset = self.gen.length - self.ring.write_pos

    def _context(self, frames) -> np.ndarray:
        if frames is None or len(frames) == 0:
            return np.zeros((1, NUM_REGS), np.uint8)
        return np.ascontiguousarray(frames[-self.gen.cfg.context_frames:])

    def prefill(self, request: GenRequest) -> None:
        self.request = request
        self._apply_settings(request, None)
        self._applied = request
        self._fill()

    def start(self) -> "GeneratorThread":
        self._thread = threading.Thread(target=self._run, name="sidlive-generator", daemon=True)
        self._worker = threading.Thread(target=self._prime_worker, name="sidlive-primer", daemon=True)
        self._thread.start()
        self._worker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        self._job_event.set()
        for t in (self._thread, self._worker):
            if t is not None:
                t.join(timeout=2.0)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ generator thread
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                req = self.request
                if req is not self._applied and \
                        time.perf_counter() - self._last_rollback >= self.min_rollback_interval_s:
                    self._apply(req)
                if self._ready is not None:
                    self._swap_in_shadow()
                self._fill()
                self.wake.wait(0.003)
                self.wake.clear()
        except BaseException as e:  # noqa: BLE001 - the watchdog reports it
            self.error = e
            self.on_error(f"generator thread stopped: {type(e).__name__}: {e}")

    def _fill(self) -> None:
        req = self._applied
        target = req.lookahead_frames if req is not None else 3
        ring, gen = self.ring, self.gen
        while ring.lookahead_frames < target and not self._stop.is_set():
            slot = ring.reserve()
            if slot is None:
                return
            pos = ring.write_pos
            f = self.arrangement.frame_for(pos)
            t0 = time.perf_counter()
            if f is not None:
                gen.prime(f[None, :])
                np.copyto(slot, f)
            else:
                gen.generate(1, self._one)
                np.bitwise_and(self._one[0], CANON_MASK, out=slot)   # what is played is what is recorded
            self.busy_s += time.perf_counter() - t0
            self.frames_generated += 1
            self.hist[pos % len(self.hist)] = slot
            ring.commit()

    def _apply_settings(self, req: GenRequest, prev: GenRequest | None) -> bool:
        changed = False
        if prev is None or req.sampling() != prev.sampling():
            self.gen.set_sampling(temperature=req.temperature, top_k=req.top_k, top_p=req.top_p,
                                  composer=req.composer)
            changed = True
        if prev is None or req.seed != prev.seed:
            self.gen.reseed(req.seed)
            changed = True
        return changed

    def _apply(self, req: GenRequest) -> None:
        prev = self._applied
        self._applied = req
        changed = self._apply_settings(req, prev)
        loop_changed = prev is None or req.loop_key != prev.loop_key or req.mode != prev.mode
        panic = prev is not None and req.panic != prev.panic
        if loop_changed and req.loop is not None and req.mode == "prime":
            self._job = (req.loop, req.loop_key)   # the worker primes the shadow; swapped in later
            self._job_event.set()
            loop_changed = False
        elif loop_changed:
            self._job = None
        if changed or loop_changed or panic:
            self._rollback(req, loop_changed, panic)

    def _wait_cut(self) -> int | None:
        ring = self.ring
        ring.request_rollback(ring.read_pos + self.keep_frames)
        while not self._stop.is_set():
            cut = ring.rollback_done()
            if cut is not None:
                return cut
            time.sleep(0.0005)
        return None

    def _rollback(self, req: GenRequest, loop_changed: bool, panic: bool) -> None:
        cut = self._wait_cut()
        if cut is None:
            return
        self.gen.rollback_to(cut + self.offset)
        if loop_changed:
            mode = req.mode if req.loop is not None else "prime"
            self.arrangement.set(req.loop, mode, cut)
        if panic:
            row = self.hist[(cut - 1) % len(self.hist)].copy() if cut > 0 else np.zeros(NUM_REGS, np.uint8)
            for c in CONTROL_REGS:
                row[c] &= 0xFE
            self.gen.prime(row[None, :])
            slot = self.ring.reserve()
            np.copyto(slot, row)
            self.hist[cut % len(self.hist)] = row
            self.ring.commit()
            self.engine.panic_cut = (req.panic, cut)
        self._last_rollback = time.perf_counter()
        self.rollback_log.append((req.seq, cut, self._last_rollback))
        if len(self.rollback_log) > 100_000:
            del self.rollback_log[:50_000]

    def _swap_in_shadow(self) -> None:
        ready = self._ready
        req = self._applied
        job = self._job
        if job is None or job[1] != ready or req is None:
            self._ready = None
            self._job_event.set()   # a newer job (or none): the worker looks again
            return
        cut = self._wait_cut()
        if cut is None:
            return
        self.gen, self._shadow = self._shadow, self.gen
        self._ready = None          # only now may the worker touch the (new) shadow again
        self._apply_settings(req, None)   # the swapped-in generator gets the current settings and seed
        self.offset = self.gen.length - cut
        self.arrangement.set(job[0], "prime", cut)
        self._job = None
        self.primes += 1
        self._last_rollback = time.perf_counter()
        self.rollback_log.append((req.seq, cut, self._last_rollback))

    # ------------------------------------------------------------------ primer thread
    def _prime_worker(self) -> None:
        from engine.generator import Generator
        try:
            while not self._stop.is_set():
                self._job_event.wait(0.2)
                self._job_event.clear()
                job = self._job
                if job is None or self._ready is not None:
                    continue
                if self._shadow is None:
                    self._shadow = Generator(self.gen.model, max_rollback_frames=self.gen.max_rollback_frames,
                                             log=None)
                self._shadow.reset()
                self._shadow.prime(self._context(job[0].regs))
                if self._job is job:
                    self._ready = job[1]
                else:
                    self._job_event.set()
        except BaseException as e:  # noqa: BLE001
            self.error = e
            self.on_error(f"loop primer stopped: {type(e).__name__}: {e}")
