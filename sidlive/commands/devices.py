"""`sidlive devices`: list audio devices (sounddevice) and MIDI ports (mido, rtmidi backend).

    sidlive devices [--json]

Each section says plainly when there is nothing, and why when the backend failed
(no PortAudio, no ALSA sequencer, ...).
"""
from __future__ import annotations

import argparse
import json

import mido


def audio_devices() -> tuple[list[dict], str | None]:
    """([{index, name, hostapi, inputs, outputs, default_rate_hz, default_output}], error)."""
    try:
        import sounddevice as sd  # loads PortAudio: optional, so rendering and recording work without it
        devs = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_out = sd.default.device[1]
    except Exception as e:   # OSError: no PortAudio; PortAudioError: backend init failed
        return [], f"{type(e).__name__}: {e}"
    out = []
    for d in devs:
        out.append({"index": int(d["index"]), "name": d["name"],
                    "hostapi": hostapis[d["hostapi"]]["name"],
                    "inputs": int(d["max_input_channels"]), "outputs": int(d["max_output_channels"]),
                    "default_rate_hz": float(d["default_samplerate"]),
                    "default_output": int(d["index"]) == default_out})
    return out, None


def midi_ports() -> tuple[list[str], list[str], str | None]:
    """(input names, output names, error)."""
    try:
        mido.set_backend("mido.backends.rtmidi", load=True)
        return list(mido.get_input_names()), list(mido.get_output_names()), None
    except Exception as e:   # rtmidi raises SystemError-like errors without an ALSA sequencer
        return [], [], f"{type(e).__name__}: {e}"


def describe() -> dict:
    """Audio devices and MIDI input / output ports, each with the error when its backend failed."""
    audio, audio_err = audio_devices()
    ins, outs, midi_err = midi_ports()
    return {"audio": audio, "audio_error": audio_err,
            "midi_inputs": ins, "midi_outputs": outs, "midi_error": midi_err}


def format_report(d: dict) -> str:
    """describe()'s record as text, saying plainly when a section is empty and why."""
    lines = ["audio devices (sounddevice):"]
    if d["audio"]:
        for a in d["audio"]:
            mark = "*" if a["default_output"] else " "
            lines.append(f" {mark}{a['index']:>3}  {a['name']}  [{a['hostapi']}]  "
                         f"in {a['inputs']} / out {a['outputs']}, {a['default_rate_hz']:.0f} Hz")
        lines.append("  (* default output)")
    else:
        why = f" ({d['audio_error']})" if d["audio_error"] else ""
        lines.append(f"  none: no audio devices found{why}")
    lines.append("MIDI input ports (mido/rtmidi):")
    lines += [f"  {n}" for n in d["midi_inputs"]] or \
        ["  none: no MIDI input ports" + (f" ({d['midi_error']})" if d["midi_error"] else "")]
    lines.append("MIDI output ports:")
    lines += [f"  {n}" for n in d["midi_outputs"]] or \
        ["  none: no MIDI output ports" + (f" ({d['midi_error']})" if d["midi_error"] else "")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`sidlive devices`: print the audio devices and MIDI ports (text or --json); returns 0."""
    ap = argparse.ArgumentParser(prog="sidlive devices", description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = ap.parse_args(argv)
    d = describe()
    print(json.dumps(d, indent=1) if args.json else format_report(d))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
