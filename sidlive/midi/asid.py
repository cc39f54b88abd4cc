"""ASID: SID register frames as MIDI SysEx, for DeepSID, SIDFactory II, USBSID-Pico, ...

Protocol (../shared/ASID.md, docs/asid.md): every message is `F0 2D <cmd> ... F7`.
  start  F0 2D 4C F7        stop  F0 2D 4D F7        text  F0 2D 4F <ascii> F7
  update F0 2D 4E m0 m1 m2 m3 b0 b1 b2 b3 <data> F7
         bit k of m_i: ASID id 7i+k is present; the same bit of b_i: its value's bit 7;
         data: the low 7 bits of each present register, in id order.
ASID ids 0-24 are the SID registers in sidlive.frames.WRITE_ORDER (control registers
$04/$0B/$12 last, ids 22-24); ids 25-27 are a second write to those control registers
within the same frame (decoded here; the encoder never needs them: a frame has one value
per register).

    enc = AsidEncoder()
    msg = enc.encode(frame)            # bytes: an update with the changed registers
                                       # (all 25 on the first frame), b"" when none changed
    frames = decode_asid(stream)       # (n_updates, 25) uint8, one row per update message

    out = AsidOut("virtual")           # rtmidi output: virtual port "sidlive:asid", or the
    out.send_frame(frame)              # named port (exact / unique substring); JACK MIDI when
    out.close(); out.close()           # a JACK server runs, else ALSA; start/stop messages sent;
                                       # all 25 registers again every refresh_s (1 s)
    send_paced(out, frames.regs, frames.frame_rate_hz)   # a whole sequence at frame rate
"""
from __future__ import annotations

import time

import numpy as np
import rtmidi

from sidlive.frames import CONTROL_REGS, NUM_REGS, WRITE_ORDER
from sidlive.midi.inputs import MidiPortError, choose_api, match_port

SYSEX, EOX, MANUFACTURER = 0xF0, 0xF7, 0x2D
CMD_START, CMD_STOP, CMD_UPDATE, CMD_TEXT = 0x4C, 0x4D, 0x4E, 0x4F
START_MESSAGE = bytes((SYSEX, MANUFACTURER, CMD_START, EOX))
STOP_MESSAGE = bytes((SYSEX, MANUFACTURER, CMD_STOP, EOX))
ASID_REGS = WRITE_ORDER  # ASID id -> SID register offset, ids 0..24
SECOND_WRITE_REGS = CONTROL_REGS  # ids 25..27
N_IDS = 28
UPDATE_OVERHEAD_BYTES = 12  # F0 2D 4E, 4 masks, 4 MSB bytes, F7
MIDI_DIN_BYTES_PER_S = 31_250 // 10  # 8 data bits + start + stop per byte
CLIENT_NAME = "sidlive"
JACK_DRAIN_S = 0.1
VIRTUAL_PORT = "asid"
REFRESH_S = 1.0

assert ASID_REGS[:6] == (0x00, 0x01, 0x02, 0x03, 0x05, 0x06) and ASID_REGS[22:] == (0x04, 0x0B, 0x12)


def update_message(values_by_id: list[tuple[int, int]]) -> bytes:
    """An update carrying (ASID id, value) pairs, ids ascending and unique."""
    masks, msbs, data = [0] * 4, [0] * 4, []
    last = -1
    for i, v in values_by_id:
        if not last < i < N_IDS:
            raise ValueError(f"ASID ids must ascend within 0..{N_IDS - 1}; got {i} after {last}")
        if not 0 <= v <= 0xFF:
            raise ValueError(f"ASID id {i}: value {v} outside 0..255")
        last = i
        masks[i // 7] |= 1 << (i % 7)
        if v & 0x80:
            msbs[i // 7] |= 1 << (i % 7)
        data.append(v & 0x7F)
    return bytes([SYSEX, MANUFACTURER, CMD_UPDATE] + masks + msbs + data + [EOX])


def text_message(text: str) -> bytes:
    """Display text (printable ASCII; others become '?')."""
    body = bytes(ord(c) if 0x20 <= ord(c) < 0x7F else 0x3F for c in str(text))
    return bytes((SYSEX, MANUFACTURER, CMD_TEXT)) + body + bytes((EOX,))


class AsidEncoder:
    """Frames -> update messages with only the registers changed since the previous frame."""

    def __init__(self, send_unchanged: bool = False):
        self.send_unchanged = send_unchanged  # True: an empty update (12 bytes) for a frame with no change
        self.prev: list[int] | None = None

    def reset(self) -> None:
        """Forget the previous frame: the next update carries all 25 registers."""
        self.prev = None

    def encode(self, frame) -> bytes:
        """The update message for one (25,) frame: only registers changed since the last one (b"" if none)."""
        row = [int(v) for v in frame]
        if len(row) != NUM_REGS or not all(0 <= v <= 0xFF for v in row):
            raise ValueError(f"a frame is {NUM_REGS} register values 0..255; got {row!r}")
        prev = self.prev
        pairs = [(i, row[r]) for i, r in enumerate(ASID_REGS) if prev is None or row[r] != prev[r]]
        self.prev = row
        if not pairs and not self.send_unchanged:
            return b""
        return update_message(pairs)


def encode_frames(regs: np.ndarray, send_unchanged: bool = False) -> list[bytes]:
    """One message per frame (b"" for an unchanged frame unless send_unchanged)."""
    enc = AsidEncoder(send_unchanged)
    return [enc.encode(row) for row in np.asarray(regs, np.uint8)]


def _messages(stream: bytes):
    """(offset, message bytes F0..F7) for each SysEx message; ValueError naming the offset."""
    i, n = 0, len(stream)
    while i < n:
        if stream[i] != SYSEX:
            raise ValueError(f"offset {i}: byte ${stream[i]:02X} outside a SysEx message (expected $F0)")
        j = i + 1
        while j < n and stream[j] != EOX:
            if stream[j] & 0x80:
                raise ValueError(f"offset {j}: status byte ${stream[j]:02X} inside a SysEx message "
                                 "(data bytes are $00-$7F)")
            j += 1
        if j == n:
            raise ValueError(f"offset {i}: SysEx message without its $F7 end")
        yield i, stream[i:j + 1]
        i = j + 1


def decode_asid(stream: bytes, initial=None) -> np.ndarray:
    """The register frame after each ASID update in a byte stream: (n_updates, 25) uint8.

    Registers start at `initial` (default all 0). Start/stop/text and other ASID commands
    are skipped; messages for other manufacturers or malformed updates raise ValueError
    naming the offset."""
    regs = [0] * NUM_REGS if initial is None else [int(v) for v in initial]
    frames = []
    for off, msg in _messages(bytes(stream)):
        if len(msg) < 4 or msg[1] != MANUFACTURER:
            raise ValueError(f"offset {off}: not an ASID message (manufacturer ${msg[1] if len(msg) > 2 else 0:02X}, "
                             f"expected ${MANUFACTURER:02X})")
        if msg[2] != CMD_UPDATE:
            continue
        body = msg[3:-1]
        if len(body) < 8:
            raise ValueError(f"offset {off}: update has {len(body)} bytes before $F7; needs 8 (masks, MSBs)")
        masks, msbs, data = body[:4], body[4:8], body[8:]
        ids = [7 * b + k for b in range(4) for k in range(7) if masks[b] >> k & 1]
        if len(data) != len(ids):
            raise ValueError(f"offset {off}: masks name {len(ids)} registers but {len(data)} data bytes follow")
        for i, d in zip(ids, data):
            value = d | (0x80 if msbs[i // 7] >> (i % 7) & 1 else 0)
            reg = ASID_REGS[i] if i < NUM_REGS else SECOND_WRITE_REGS[i - NUM_REGS]
            regs[reg] = value
        frames.append(list(regs))
    return np.array(frames, np.uint8).reshape(-1, NUM_REGS)


def bandwidth(regs: np.ndarray, frame_rate_hz: float) -> dict:
    """ASID bytes per frame of a frame sequence (only changes sent; 0 for an unchanged
    frame) against a MIDI DIN line (3,125 bytes/s)."""
    sizes = np.array([len(m) for m in encode_frames(regs)], np.float64)  # (N,)
    din_per_frame = MIDI_DIN_BYTES_PER_S / frame_rate_hz
    return {"mean": float(sizes.mean()), "p99": float(np.percentile(sizes, 99)), "max": float(sizes.max()),
            "din_bytes_per_frame": din_per_frame, "din_share_mean": float(sizes.mean() / din_per_frame)}


def send_paced(out, regs: np.ndarray, frame_rate_hz: float, stop=None) -> int:
    """Send frames to `out` (anything with send_frame, e.g. AsidOut) at frame_rate_hz,
    on a drift-free schedule (frame k at start + k / rate; a late frame is sent at once,
    not skipped). stop: an optional threading.Event that ends it early. Returns the frames
    sent. This is what `sidlive play --asid` runs beside (or instead of) the audio."""
    if not frame_rate_hz > 0:
        raise ValueError(f"frame_rate_hz must be > 0, got {frame_rate_hz}")
    start = time.monotonic()
    for k, row in enumerate(np.asarray(regs, np.uint8)):
        delay = start + k / frame_rate_hz - time.monotonic()
        if stop is not None:
            if stop.wait(max(0.0, delay)):
                return k
        elif delay > 0:
            time.sleep(delay)
        out.send_frame(row)
    return len(regs)


class AsidOut:
    """An rtmidi output port that sends each frame as an ASID update.

    port: None/"virtual" opens a virtual output `sidlive:asid`; anything else connects to
    the output port whose name matches (exact, else unique case-insensitive substring).
    api: "auto" (JACK when a JACK server runs, else ALSA), "jack" or "alsa". Sends the ASID
    start message on open and stop on close(); close() twice is safe. Every refresh_s
    seconds (0: never) one update carries all 25 registers, so a SID plugged in mid-set,
    or one that lost a message on the wire, is whole again within that time."""

    def __init__(self, port: str | None = "virtual", api: str = "auto", client_name: str = CLIENT_NAME,
                 virtual_name: str = VIRTUAL_PORT, refresh_s: float = REFRESH_S):


        if not 0.0 <= refresh_s <= 3600.0:
            raise ValueError(f"ASID refresh_s must be in 0..3600 s, got {refresh_s}")
        self.api = choose_api(api)
        self.encoder = AsidEncoder()
        self.refresh_s = float(refresh_s)
        self._next_refresh = 0.0
        self.closed = False
        self.sent_bytes = 0
        self.sent_messages = 0
        rtapi = rtmidi.API_UNIX_JACK if self.api == "jack" else rtmidi.API_LINUX_ALSA
        try:
            self._rt = rtmidi.MidiOut(rtapi=rtapi, name=client_name)
        except rtmidi.RtMidiError as e:
            raise MidiPortError(f"ASID ({self.api}): cannot create a MIDI client: {e}") from None
        try:
            if port in (None, "virtual"):
                self._rt.open_virtual_port(virtual_name)
                self.name = f"{client_name}:{virtual_name}"
            else:
                names = self._rt.get_ports()
                found = match_port(port, names)
                if found is None:
                    raise MidiPortError(f"ASID ({self.api}): no single MIDI output port matches {port!r}; "
                                        f"available: {names or 'none'}")
                self._rt.open_port(names.index(found))
                self.name = found
        except rtmidi.RtMidiError as e:
            self._rt.delete()
            raise MidiPortError(f"ASID ({self.api}): cannot open port {port!r}: {e}") from None
        except MidiPortError:
            self._rt.delete()
            raise
        self.send_raw(START_MESSAGE)

    def send_raw(self, message: bytes) -> None:
        """Send one raw MIDI message, counting bytes and messages; nothing once closed."""
        if self.closed:
            return
        self._rt.send_message(list(message))
        self.sent_bytes += len(message)
        self.sent_messages += 1

    def send_frame(self, frame) -> int:
        """Send the registers of `frame` (25 values) that changed (all of them when a
        refresh is due); returns bytes sent."""
        if self.refresh_s > 0:
            now = time.monotonic()
            if now >= self._next_refresh:
                self._next_refresh = now + self.refresh_s
                self.encoder.reset()
        msg = self.encoder.encode(frame)
        if not msg or self.closed:
            return 0
        self.send_raw(msg)
        return len(msg)

    def refresh(self) -> None:
        """The next frame goes out with all 25 registers (a SID that joined late, or lost
        a message, is whole again)."""
        self.encoder.reset()

    def send_text(self, text: str) -> None:
        """Send a display-text message (printable ASCII)."""
        self.send_raw(text_message(text))

    def close(self, drain_s: float = JACK_DRAIN_S) -> None:
        """Send stop and close the port. With JACK, rtmidi hands messages to the JACK
        process thread; closing at once can drop the last ones (seen: the stop message),
        so wait drain_s (a few JACK periods) first."""
        if self.closed:
            return
        try:
            self.send_raw(STOP_MESSAGE)
            if self.api == "jack" and drain_s > 0:
                time.sleep(drain_s)
        finally:
            self.closed = True
            try:
                self._rt.close_port()
            finally:
                self._rt.delete()

    def __enter__(self) -> "AsidOut":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
