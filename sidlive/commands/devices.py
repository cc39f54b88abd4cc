"""`sidlive devices`: list audio devices (sounddevice) and the MIDI ports of every rtmidi API (JACK, ALSA).

    sidlive devices [--json]

Each section says plainly when there is nothing, and why when the backend failed
(no PortAudio, no ALSA sequencer, ...).
"""
from __future__ import annotations

import argparse
import json
from sidlive.midi.inputs import ports_by_api



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


def describe() -> dict:
    """Audio devices, and the MIDI ports of each rtmidi API (JACK, ALSA) with the error when one failed."""
    audio, audio_err = audio_devices()
    return {"audio": audio, "audio_error": audio_err, "midi": ports_by_api()}


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
    what = {"inputs": "input ports (sources `sidlive live --midi NAME` can read)",
            "outputs": "output ports (destinations a controller or mido can send to; sidlive:midi_in is live's)"}
    for m in d["midi"]:
        for kind in ("inputs", "outputs"):
            lines.append(f"MIDI {what[kind]} [{m['api'].upper()}]:")
            lines += [f"  {n}" for n in m[kind]] or \
                [f"  none: no MIDI {kind[:-1]} ports" + (f" ({m['error']})" if m["error"] else "")]
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
