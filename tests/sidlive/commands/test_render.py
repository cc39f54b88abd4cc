import json
import struct
import wave

import numpy as np
import pytest

from sidlive.live import playback as play
from sidlive.audio.renderer import frame_sample_boundary
from sidlive.audio.wav import HEADER_BYTES, WavWriter, read_wav, write_wav
from sidlive.c64.goattracker import FixtureUnavailable, goattracker_frames
from sidlive.commands import devices, render
from sidlive.commands import play as play_cmd
from sidlive.frames import PAL_CLOCK_HZ, PAL_FRAME_CYCLES, save
from sidlive.measure.soundcheck import energy_envelope


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """A 4 s GoatTracker fixture saved as .regs and .txt."""
    d = tmp_path_factory.mktemp("song")
    try:
        fr = goattracker_frames("dojo", seconds=4, cache_dir=d)
    except FixtureUnavailable as e:
        pytest.skip(str(e))
    save(fr, d / "dojo.regs")
    save(fr, d / "dojo.txt")
    return fr, d


def _ac(x):
    return float(np.median(energy_envelope(x.astype(np.float64), 48_000, 20)))


# ---------------------------------------------------------------------------- WAV

def test_write_and_read_wav(tmp_path):
    x = (np.sin(np.arange(4800) / 10) * 10_000).astype(np.int16)
    write_wav(tmp_path / "a.wav", x, 48_000)
    with wave.open(str(tmp_path / "a.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 48_000, 4800)
    y, rate = read_wav(tmp_path / "a.wav")
    assert rate == 48_000 and np.array_equal(x, y)
    write_wav(tmp_path / "f.wav", np.array([0.0, 1.0, -1.0, 2.0], dtype=np.float32), 44_100)
    assert read_wav(tmp_path / "f.wav")[0].tolist() == [0, 32767, -32767, 32767]
    st = np.stack([x, -x], axis=1)
    write_wav(tmp_path / "s.wav", st, 48_000)
    assert np.array_equal(read_wav(tmp_path / "s.wav", mono=False)[0], st)
    assert np.all(np.abs(read_wav(tmp_path / "s.wav")[0]) <= 1)   # averaged to mono


def test_wav_writer_header_valid_while_growing(tmp_path):
    p = tmp_path / "grow.wav"
    w = WavWriter(p, 8_000, header_interval_s=1.0)
    block = np.arange(1000, dtype=np.int16)
    for _ in range(25):                    # 25,000 samples = 3.1 s
        w.write(block)
    # Not closed: the header counts everything up to the last whole-second update.
    with wave.open(str(p)) as r:
        n = r.getnframes()
        assert 24_000 - 8_000 < n <= 25_000 and n % 1000 == 0
        assert np.array_equal(np.frombuffer(r.readframes(1000), "<i2"), block)
    riff, data = struct.unpack_from("<I", p.read_bytes(), 4)[0], struct.unpack_from("<I", p.read_bytes(), 40)[0]
    assert riff == 36 + data and data == 2 * n
    w.close()
    w.close()                              # twice is safe
    with wave.open(str(p)) as r:
        assert r.getnframes() == 25_000
    assert p.stat().st_size == HEADER_BYTES + 50_000
    with pytest.raises(ValueError, match="closed"):
        w.write(block)


def test_wav_errors(tmp_path):
    with pytest.raises(ValueError, match="rate_hz"):
        WavWriter(tmp_path / "x.wav", 0)
    with pytest.raises(ValueError, match="channels"):
        WavWriter(tmp_path / "x.wav", 48_000, channels=0)
    with WavWriter(tmp_path / "x.wav", 48_000, channels=2) as w:
        with pytest.raises(ValueError, match=r"\(N, 2\)"):
            w.write(np.zeros((10, 3), np.int16))
    with pytest.raises(ValueError, match="-32768..32767"):
        write_wav(tmp_path / "y.wav", np.array([40_000]), 48_000)
    (tmp_path / "bad.wav").write_bytes(b"RIFF1234WAVEjunk")
    with pytest.raises(ValueError, match="bad.wav"):
        read_wav(tmp_path / "bad.wav")


# ---------------------------------------------------------------------------- render

@pytest.mark.parametrize("ext, rate", [(".regs", 48_000), (".txt", 44_100)])
def test_render_cli_writes_wav(song, tmp_path, ext, rate, capsys):
    fr, d = song
    out = tmp_path / "out.wav"
    assert render.main([str(d / f"dojo{ext}"), "-o", str(out), "--rate", str(rate), "--chip", "8580"]) == 0
    assert "x real time" in capsys.readouterr().out
    x, got_rate = read_wav(out)
    assert got_rate == rate
    assert len(x) == frame_sample_boundary(len(fr), rate, PAL_FRAME_CYCLES, PAL_CLOCK_HZ)
    assert _ac(x[rate // 2:]) > 200


def test_render_cli_options(song, tmp_path):
    fr, d = song
    src = str(d / "dojo.regs")
    assert render.main([src, "-o", str(tmp_path / "a.wav"), "--seconds", "1.5"]) == 0
    a, _ = read_wav(tmp_path / "a.wav")
    assert len(a) == frame_sample_boundary(round(1.5 * fr.frame_rate_hz), 48_000)
    assert render.main([src, "-o", str(tmp_path / "m.wav"), "--seconds", "1.5", "--mute", "1,2,3"]) == 0
    m, _ = read_wav(tmp_path / "m.wav")
    assert _ac(m[24_000:]) < 0.02 * _ac(a[24_000:])
    assert render.main([src, "-o", str(tmp_path / "n.wav"), "--seconds", "1.5", "--no-filter"]) == 0
    n, _ = read_wav(tmp_path / "n.wav")
    assert len(n) == len(a) and np.abs(n.astype(int) - a).mean() > 20


def test_render_cli_errors(song, tmp_path, capsys):
    _, d = song
    out = str(tmp_path / "x.wav")
    assert render.main([str(d / "dojo.regs"), "-o", out, "--mute", "4"]) == 1
    assert "voice '4'" in capsys.readouterr().err
    assert render.main([str(tmp_path / "none.regs"), "-o", out]) == 1
    assert "none.regs: no such file" in capsys.readouterr().err
    (tmp_path / "bad.regs").write_bytes(b"XXXX" + bytes(20))
    assert render.main([str(tmp_path / "bad.regs"), "-o", out]) == 1
    assert "magic" in capsys.readouterr().err
    assert render.main([str(d / "dojo.regs"), "-o", out, "--subtune", "2"]) == 1
    with pytest.raises(SystemExit):
        render.main([str(d / "dojo.regs"), "-o", out, "--rate", "22050"])


def test_render_a_sid(hvsc, tmp_path):
    try:
        import sidlive.c64.dump  # noqa: F401
        import sidlive.c64.machine  # noqa: F401  the dumper's emulator
    except ImportError as e:
        pytest.skip(f"sidlive.c64.dump cannot run: {e}")
    tune = next(p for p in sorted((hvsc / "MUSICIANS").rglob("*.sid"))[:50]
                if p.read_bytes()[:4] == b"PSID")
    out = tmp_path / "t.wav"
    info = render.render_file(tune, out, seconds=2.0)
    x, _ = read_wav(out)
    assert info["frames"] >= 100 and len(x) == round(info["audio_s"] * 48_000)


def test_demo_writes_a_wav(tmp_path, capsys):
    try:
        path = render.demo(tmp_path / "demo", seconds=2.0)
    except FixtureUnavailable as e:
        pytest.skip(str(e))
    assert path.is_file() and str(path) in capsys.readouterr().out
    x, rate = read_wav(path)
    assert rate == 48_000 and len(x) > 1.9 * rate


# ---------------------------------------------------------------------------- play, devices

def test_play_without_device_exits_3(song, capsys):
    _, d = song
    assert play_cmd.main([str(d / "dojo.regs"), "--device", "no-such-device-xyz"]) == play.NO_DEVICE_EXIT
    err = capsys.readouterr().err
    assert "no-such-device-xyz" in err or "no audio" in err
    assert play.play_wav_if_device(d / "nothing.wav", device="no-such-device-xyz").startswith("not played")


def test_play_through_jack_dummy(song, jack, capsys):
    from sidlive.audio.jackserver import portaudio_jack_device

    _, d = song
    idx = portaudio_jack_device("output")
    if idx is None:
        pytest.skip("PortAudio here has no JACK host API")
    assert play_cmd.main([str(d / "dojo.regs"), "--seconds", "0.5", "--device", str(idx)]) == 0
    assert "playing" in capsys.readouterr().out


def test_devices_lists_or_says_none(capsys):
    assert devices.main([]) == 0
    out = capsys.readouterr().out
    assert "audio devices" in out and "MIDI input ports" in out and "MIDI output ports" in out
    assert devices.main(["--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) == {"audio", "audio_error", "midi"} and [m["api"] for m in d["midi"]] == ["jack", "alsa"]
    if not d["audio"]:
        assert "none" in devices.format_report(d)


def test_devices_lists_the_jack_midi_ports_of_a_live_session(jack, capsys):
    """`sidlive live` opens its sidlive:midi_in port through JACK: `sidlive devices` shows it, labelled."""
    from sidlive.midi.inputs import RtMidiInput
    port = RtMidiInput(None, api="jack")
    try:
        assert devices.main([]) == 0
        out = capsys.readouterr().out
        jack_part = out.split("[ALSA]")[0].split("[JACK]")[-1]
        assert "sidlive:midi_in" in jack_part, out
    finally:
        port.close()
