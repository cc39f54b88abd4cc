"""The renderer's fractional resampler: a 32-tap windowed-sinc interpolator reading reSID's
samples at a ratio that `RateLock` (a second-order phase-locked loop, updated once a step)
keeps locked to the exact frame boundaries (see sidlive/audio/renderer.py).

Sample accounting. reSIDfp's long-run output rate is not quite the rate asked for
(measured: 2.2e-4 fast with RESAMPLE at 48 kHz, +626 samples per 3,000 frames; 2.0e-4
at 44.1 kHz; 3e-5 with DECIMATE), and sidplayfp's WAVs carry the same skew. Frame k's
audio is therefore defined on an exact output timeline: frames 0..k-1 span
`frame_sample_boundary(k)` = floor(k * cycles * rate / clock) samples (integer
arithmetic, no drift over any length); a step ending at cycle c ends at sample
floor(c * rate / clock). reSID's samples go into an input FIFO and a
32-tap windowed-sinc fractional resampler reads them at a ratio that `RateLock` (a
second-order phase-locked loop, updated once a step) keeps locked to the step
boundaries: the ratio settles to reSID's true rate within ~1e-6 and the read position
stays ~28 input samples (0.6 ms) behind the newest sample. The output then goes into a
one-step FIFO from which blocks of any size are handed out.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

TAPS = 32              # fractional resampler length (flat within 0.04 dB to 0.9 x Nyquist)
PHASES = 512           # table rows per input sample (linear between rows)
KAISER_BETA = 5.0
LOCK_DELAY = TAPS // 2 + 12   # input samples the read position trails the newest one
LOCK_GAIN = 0.03              # phase gain per step; frequency gain is LOCK_GAIN**2 / 4


class RateLock:
    """Locks a fractional resampler's read position to frame boundaries.

    Each frame (the Renderer: each step), `advance(in_total, out_count, boundary_frac)`
    gets the input samples produced so far (reSID's count, which jitters by a sample and
    runs slightly fast), the output samples this frame must yield, and how far the exact
    boundary lies past the last output sample (0 <= frac < 1, in output samples). It
    returns the input read position of the frame's first output sample and the step per
    output sample. The target is to read `delay` input samples behind the newest one at
    every boundary.
    """

    def __init__(self, delay: float = LOCK_DELAY, gain: float = LOCK_GAIN,
                 resync_error: float = LOCK_DELAY - TAPS // 2 - 2):
        self.delay = float(delay)
        self.gain = float(gain)
        self.freq_gain = gain * gain / 4.0   # critically damped second-order loop
        self.resync_error = float(resync_error)
        self.reset()

    def reset(self) -> None:
        """Back to the unlocked state: ratio 1, no read position, no error, no resyncs."""
        self.ratio = 1.0      # input samples per output sample
        self.pos = None       # input read position of the next output sample
        self.last_error = 0.0
        self.resyncs = 0

    def advance(self, in_total: int, out_count: int, boundary_frac: float) -> tuple[float, float]:
        """(Input read position of this frame's first output sample, input step per output sample)."""
        target = in_total - self.delay - boundary_frac * self.ratio
        if self.pos is None:
            self.pos = target - out_count * self.ratio
        err = target - (self.pos + out_count * self.ratio)
        if abs(err) > self.resync_error:   # far off (should not happen): jump, don't slew
            self.pos += err
            self.resyncs += 1
            err = 0.0
        self.last_error = err
        self.ratio += self.freq_gain * err / out_count
        step = self.ratio + self.gain * err / out_count
        start = self.pos
        self.pos = start + out_count * step
        return start, step


def sinc_table(taps: int = TAPS, phases: int = PHASES, beta: float = KAISER_BETA) -> np.ndarray:
    """Row p: the filter reading at fractional offset p/phases past sample floor(pos)."""
    half = taps // 2
    frac = np.arange(phases + 1, dtype=np.float64)[:, None] / phases   # (P+1, 1)
    d = np.arange(taps, dtype=np.float64)[None, :] - (half - 1) - frac  # (P+1, T)
    window = np.i0(beta * np.sqrt(np.clip(1.0 - (d / half) ** 2, 0.0, 1.0))) / np.i0(beta)
    h = np.sinc(d) * window
    h /= h.sum(axis=1, keepdims=True)   # unity gain at DC for every phase
    return h.astype(np.float32)


@njit(cache=True, nogil=True)
def interpolate(src, src_base, start, step, n, table, out):
    """out[j] = src interpolated at absolute input position start + j*step, j < n."""
    taps = table.shape[1]
    half = taps // 2
    phases = table.shape[0] - 1
    for j in range(n):
        pos = start + j * step
        ip = math.floor(pos)
        fp = (pos - ip) * phases
        ph = int(fp)
        w = fp - ph
        i0 = int(ip) - src_base - half + 1
        a0 = 0.0
        a1 = 0.0
        for t in range(taps):
            x = src[i0 + t]
            a0 += x * table[ph, t]
            a1 += x * table[ph + 1, t]
        out[j] = a0 + w * (a1 - a0)


@njit(cache=True)
def interpolate_gil(src, src_base, start, step, n, table, out):
    """interpolate holding the GIL, for the live audio callback: releasing it for ~20 us
    lets another Python thread take it, and the callback then waits up to the switch
    interval (or longer, if that thread is preempted) to get it back."""
    interpolate(src, src_base, start, step, n, table, out)


@njit(cache=True, nogil=True)
def apply_fade(buf, k, direction, n_fade):
    """Scale buf in place by gain k/n_fade, stepping k by `direction` (-1 out, +1 in, 0 hold)
    per sample within 0..n_fade; returns the new k. No allocation (the audio callback)."""
    inv = np.float32(1.0) / np.float32(n_fade)
    for j in range(buf.shape[0]):
        k = min(max(k + direction, 0), n_fade)
        buf[j] *= np.float32(k) * inv
    return k
