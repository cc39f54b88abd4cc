"""The audio side of `sidlive live`: ring -> Renderer -> output (outputs.py), and the
generator thread (genthread.py) on the other side of the ring.

`AudioCallback.callback(outdata, frames, time_info, status)` is the sounddevice callback
(also driven by `NullOutput`, a paced thread, when there is no device or JACK died). Per
block it: counts PortAudio's output_underflow flag; applies a new control snapshot if the
control thread swapped one in (`published`, one reference: mutes/solo via
Renderer.set_mute, panic via Renderer.panic (silent within 2 ms, resumed with the first frame generated after it), master gain); takes the MIDI that arrived
(`lane`, midilane.py: every message on to the control thread, mute/solo acted on at once
so they sound in the cycle that delivered them); answers a pending ring
rollback (`FrameRing.service`); renders the block (the Renderer asks `_source` for a frame
at each 50.125 Hz boundary: a ring pop, or on an empty ring the last frame again, counted
as an underrun); scales to float32 for the device and hands the int16 samples and every
frame started to the Recorder. It allocates no arrays (only numpy views and small ints),
takes no lock, prints nothing and touches no file.

Measurement hooks (preallocated, written by the callback, read by other threads):
`frame_dac[pos % N]`: when ring position pos starts sounding (perf_counter clock, mapped
from the stream's time info); `ev`/`ev_dac`: applied control snapshots, mutes and panics
with the output sample they were made at (the block's first, or a step's first when the
MIDI lane acted between steps: for replaying the take) and when the change is heard;
`keys`: the keyboard voice (keyvoice.KeySnapshot, one reference), laid over each frame
started; `cb_hist`: callback durations in 10 us bins; `played`/`played_dac`/`played_n`: every
frame the renderer started (a held one on underrun too) and when it is heard, for the
ASID feed (asidfeed.py) that sends them to a real SID in step with the speakers.
"""
from __future__ import annotations

import time

import numpy as np

from sidlive.audio.renderer import SUBFRAMES, Renderer
from sidlive.control.params import ControlState
from sidlive.frames import CONTROL_REGS, NUM_REGS, frame_sample_boundary

EV_STATE, EV_MUTE, EV_PANIC, EV_KEYS, EV_RESUME = 1, 2, 3, 4, 5
LANE_SEQ = -1               # the seq of events the MIDI lane caused (no published state)
EV_NAMES = {EV_STATE: "state", EV_MUTE: "renderer.mute", EV_PANIC: "renderer.panic", EV_KEYS: "keyboard.heard",
            EV_RESUME: "renderer.resume"}
N_EVENTS = 4096
N_FRAME_LOG = 1 << 16
N_PLAYED = 1 << 12          # played-frame log (82 s)
HIST_BIN_S = 1e-5
HIST_BINS = 5000            # 0..50 ms
MAX_BLOCK = 8192
LIVE_SUBFRAMES = 16         # renderer steps per frame in a live session (offline renders: SUBFRAMES)
REC_SCALE = 1.0 / 32767.0   # Recorder/WavWriter scale floats by 32767: this gives back the int16 exactly
_C1, _C2, _C3 = CONTROL_REGS


class AudioCallback:
    """The consumer side: one per session; `callback` runs on the audio thread only."""

    def __init__(self, ring, *, chip: str = "6581", rate_hz: int = 48_000, block_frames: int = 256,
                 subframes: int = SUBFRAMES, recorder=None, state: ControlState | None = None):
        self.ring = ring
        self.rate_hz = int(rate_hz)
        self.block_frames = int(block_frames)
        self.recorder = recorder
        self.renderer = Renderer(self._source, chip=chip, rate_hz=rate_hz, subframes=subframes, release_gil=False)
        self.renderer.step_hook = self._step_midi   # MIDI between the block's steps too
        Renderer(None, chip=chip, rate_hz=rate_hz, subframes=subframes, release_gil=False).read(block_frames)  # load Numba's cache now
        self._cycles = self.renderer.cycles_per_frame
        self._clock_hz = self.renderer.clock_hz
        self._row = np.zeros(NUM_REGS, np.uint8)
        self._i16 = np.zeros(MAX_BLOCK, np.int16)
        self._f32 = np.zeros(MAX_BLOCK, np.float32)
        self._rec = np.zeros(MAX_BLOCK, np.float32)
        self._i16b, self._f32b, self._recb = (a[:self.block_frames] for a in (self._i16, self._f32, self._rec))
        state = state or ControlState()
        # (seq, ControlState, perf time, MIDI lane messages the state covers): swapped by the control thread
        self.published = (0, state, 0.0, 0)
        self._applied = None
        self.lane = None               # midilane.MidiLane or None: set by the control thread
        self.voice_on = [True, True, True]
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
        self.ev = np.zeros((N_EVENTS, 7), np.int64)   # seq, kind, a, b, sample made at, heard sample, block start
        self.ev_dac = np.zeros(N_EVENTS, np.float64)
        self.ev_w = 0
        self.played = np.zeros((N_PLAYED, NUM_REGS), np.uint8)   # (N_PLAYED, 25) frames as started
        self.played_dac = np.zeros(N_PLAYED, np.float64)
        self.played_n = 0              # frames written to `played` (single writer: the audio thread)
        self.keys = None               # keyvoice.KeySnapshot or None: swapped by the control thread
        self._keys_seen = None
        self.fx = None                 # fx.FxHost or None: set before the stream starts

    # ------------------------------------------------------------------ audio thread
    def callback(self, outdata, frames, time_info, status) -> None:
        """The sounddevice callback: one block from the ring through the renderer to outdata (and the recorder)."""
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
        lane = self.lane
        if lane is not None:
            lane.pump(self)
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
        fx = self.fx
        if fx is not None:
            fx.process(f32)            # the effects chain in place (the recording stays dry)
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
        k = self.renderer.frames_rendered
        start = frame_sample_boundary(k, self.rate_hz, self._cycles, self._clock_hz)
        dac = self._dac0 + (start - self._block_start) / self.rate_hz
        if ring.pop_into(row):
            if self._masking:   # frames generated before the panic: gates stay off
                pc = self.panic_cut
                if pc[0] >= self._panic and pos >= pc[1]:
                    self._masking = False      # the first frame made after the panic: sound again
                    self.renderer.resume()
                    self._event(EV_RESUME, -1, self._panic, 0)
                else:
                    row[_C1] &= 0xFE
                    row[_C2] &= 0xFE
                    row[_C3] &= 0xFE
            i = pos % N_FRAME_LOG
            self.frame_dac[i] = dac
            self.frame_pos[i] = pos
            self.frames_played += 1
            if self.first_frame_dac == 0.0:
                self.first_frame_dac = dac
        keys = self.keys
        if keys is not None:            # the keyboard voice, laid over what the model wrote
            if keys is self._keys_seen:
                np.copyto(row, keys.steady, where=keys.mask)
            else:                       # a new snapshot: its first frame (gate off on a retrigger)
                self._keys_seen = keys
                np.copyto(row, keys.first, where=keys.mask)
                self._event(EV_KEYS, keys.seq, -1 if keys.note is None else keys.note, 0, start)
        if self.recorder is not None:
            self.recorder.write_frame(row)   # every frame, a held one too: the take replays exactly
        n = self.played_n
        j = n % N_PLAYED
        self.played[j] = row
        self.played_dac[j] = dac
        self.played_n = n + 1            # published last: a reader never sees a half-written row
        return row

    def _apply(self, pub) -> None:
        seq, state, _, covered = pub
        lane = self.lane
        if lane is None or covered >= lane.fast_last:   # else the lane's newer mute/solo stand
            if lane is not None:
                lane.adopt(state)
            self._set_voices(state.voice_on, seq)
        r = self.renderer
        if state.panic != self._panic:
            self._panic = state.panic
            r.panic()                  # silent within 2 ms of the next step; resumes with new frames
            self._masking = True
            self._event(EV_PANIC, seq, state.panic, 0)
        self._scale = state.gain / 32768.0
        self._event(EV_STATE, seq, 0, 0)
        self._applied = pub

    def _set_voices(self, on, seq: int) -> None:
        r = self.renderer
        for i in range(3):
            if on[i] != self.voice_on[i]:
                self.voice_on[i] = on[i]
                r.set_mute(i + 1, not on[i])
                self._event(EV_MUTE, seq, i + 1, 0 if on[i] else 1)

    def _step_midi(self) -> None:
        """Renderer step hook, inside read_into: MIDI that arrived while this callback was
        rendering (the MIDI client ran on the other core) acts from the block's next step."""
        lane = self.lane
        if lane is not None:
            lane.pump(self)

    def lane_voices(self, on) -> None:
        """Audio thread, from MidiLane.pump: which voices sound now."""
        self._set_voices(on, LANE_SEQ)

    def _event(self, kind: int, seq: int, a: int, b: int, heard: int = -1) -> None:
        w = self.ev_w
        i = w % N_EVENTS
        ev = self.ev
        if heard < 0:
            heard = self.renderer.next_step_sample
        ev[i, 0] = seq
        ev[i, 1] = kind
        ev[i, 2] = a
        ev[i, 3] = b
        ev[i, 4] = self.renderer.out_position   # the block's first sample, or the step's (step hook)
        ev[i, 5] = heard
        ev[i, 6] = self._block_start
        self.ev_dac[i] = self._dac0 + (heard - self._block_start) / self.rate_hz
        self.ev_w = w + 1

    # ------------------------------------------------------------------ other threads
    def read_events(self, since: int) -> tuple[list[tuple], int, int]:
        """Events written since index `since`: ([(seq, kind, a, b, sample, heard, dac, block)], new
        index, events lost because the reader fell behind)."""
        w = self.ev_w
        lost = max(0, w - since - N_EVENTS)
        start = since + lost
        out = []
        for j in range(start, w):
            i = j % N_EVENTS
            row = self.ev[i]
            out.append((int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]), int(row[5]),
                        float(self.ev_dac[i]), int(row[6])))
        return out, w, lost

    def frame_sound_time(self, pos: int) -> float | None:
        """perf_counter time when ring position pos started sounding, None if not (yet/any more)."""
        i = pos % N_FRAME_LOG
        return float(self.frame_dac[i]) if self.frame_pos[i] == pos else None

    def callback_percentile_ms(self, q: float) -> float:
        """Callback duration at percentile q (ms), from the histogram (upper edge of its bin)."""
        n = int(self.cb_hist.sum())
        if n == 0:
            return 0.0
        k = int(np.searchsorted(np.cumsum(self.cb_hist), q / 100.0 * n))
        return round((k + 1) * HIST_BIN_S * 1e3, 3)
