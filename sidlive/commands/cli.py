"""`sidlive` console script: a thin dispatcher to each command's `main(argv)`."""
from __future__ import annotations

import importlib
import sys

# name -> (module, one-line help). Each module has `main(argv: list[str] | None) -> int`. `score` runs
# models through PyTorch, so it lives with the trainer and is reached only through this table.
COMMANDS = {
    "live": ("sidlive.commands.live", "play the model live: MIDI/OSC control, loops, recording"),
    "loop": ("sidlive.commands.loop", "cut a prompt loop from a tune"),
    "render": ("sidlive.commands.render", "render a frames file or .sid to WAV"),
    "play": ("sidlive.commands.play", "play a frames file or .sid on an audio device"),
    "devices": ("sidlive.commands.devices", "list audio devices and MIDI ports"),
    "dump": ("sidlive.commands.dump", "dump a .sid tune to register frames (or an HVSC tree to shards)"),
    "bench": ("sidlive.commands.bench", "measure this machine's figures"),
    "score": ("training.score", "bits per frame of tunes: model vs change-model baseline"),
    "generate": ("sidlive.commands.generate", "generate frames from a model (.sidm) to .regs/.txt/.wav"),
    "export": ("sidlive.commands.export", "frames (.regs/.txt) to a playable PSID .sid"),
    "learn": ("sidlive.commands.learn", "bind the next moved MIDI control to a parameter"),
    "recover": ("sidlive.commands.recover", "finish recordings left by a crash"),
    "studio": ("sidlive.commands.studio", "the browser studio: prompt the model, keep and export takes"),
    "demo": ("sidlive.commands.demo", "the main job on shipped defaults (what `make demo` runs)"),
}


def usage() -> str:
    """The top-level help text: every command with its one-line help."""
    lines = ["usage: sidlive COMMAND [args...]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines.append("\n`sidlive COMMAND --help` for a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch argv[0] to its command's main(rest); returns the exit status (2: unknown command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"sidlive: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
