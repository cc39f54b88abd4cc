"""`sidlive generate`: frames from a model (.sidm) through the Numba engine, to .regs/.txt/.wav.

    sidlive generate [--model M] --frames 700 --temp 0.9 [--top-k K] [--top-p P] --seed S
                     [--prompt FILE(.sid|.regs|.txt) --prompt-seconds 4] [--composer NAME]
                     [--with-prompt] [--chip 6581|8580] [--rate 48000] -o OUT(.regs|.txt|.wav)

Without --prompt, generation starts from one all-zero frame. A .sid prompt is dumped with
sidlive.c64.dump. The output holds the generated frames (after the prompt with --with-prompt);
a .wav is rendered with reSID (sidlive.audio.renderer).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from engine.config import ANY_COMPOSER, normalize_composer
from engine.generator import DEFAULT_MAX_SILENCE_S, Generator, check_sampling
from engine.weights import load_model
from sidlive.audio.renderer import render
from sidlive.audio.wav import write_wav
from sidlive.export.psidfile import export_frames
from sidlive.frames import Frames, save
from sidlive.paths import DEFAULT_MODEL
from sidlive.c64.load import load_tune
from sidlive.control.params import SAMPLING_DEFAULTS

OUT_EXTS = (".regs", ".txt", ".wav", ".sid")
PROMPT_EXTS = (".sid", ".regs", ".txt")
RATES_HZ = (44_100, 48_000)


def load_prompt(path: str | Path, seconds: float) -> Frames:
    """The first `seconds` of a .sid (dumped), .regs or .txt file."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in PROMPT_EXTS:
        raise ValueError(f"{path}: prompt extension {ext!r} is not one of {', '.join(PROMPT_EXTS)}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such prompt file")
    if not seconds > 0:
        raise ValueError(f"--prompt-seconds must be > 0, got {seconds}")
    fr = load_tune(path, seconds)
    if len(fr) == 0:
        raise ValueError(f"{path}: the prompt file has no frames")
    return fr


def generate_file(out_path: str | Path, *, model: str | Path | None = None, frames: int = 700,
                  temperature: float = SAMPLING_DEFAULTS["temperature"], top_k: int = SAMPLING_DEFAULTS["top_k"],
                  top_p: float = SAMPLING_DEFAULTS["top_p"], repetition: float = SAMPLING_DEFAULTS["repetition"],
                  seed: int = 0, max_silence_s: float = DEFAULT_MAX_SILENCE_S,
                  prompt: str | Path | None = None, prompt_seconds: float = 4.0, composer: str | None = None,
                  with_prompt: bool = False, chip: str | None = None, rate_hz: int = 48_000, log=print) -> dict:
    """Generate `frames` frames and write them to out_path; returns what was done."""

    out_path = Path(out_path)
    if out_path.suffix.lower() not in OUT_EXTS:
        raise ValueError(f"{out_path}: output extension {out_path.suffix!r} is not one of {', '.join(OUT_EXTS)}")
    if not 1 <= frames <= 10_000_000:
        raise ValueError(f"--frames must be in 1..10000000, got {frames}")
    check_sampling(temperature, top_k, top_p, repetition, max_silence_s)
    model_path = Path(model) if model is not None else DEFAULT_MODEL
    if not model_path.is_file():
        hint = (" (train and export one: python -m training.export CKPT -o presets/models/default.sidm, "
                "or pass --model)") if model is None else ""
        raise FileNotFoundError(f"model {model_path} does not exist{hint}")
    m = load_model(model_path)
    if composer is not None and m.cfg.composer_index(composer) == 0 and normalize_composer(composer) != ANY_COMPOSER:
        raise ValueError(f"--composer {composer!r} is not one of the model's composers: {', '.join(m.cfg.composers)}")
    pr = load_prompt(prompt, prompt_seconds) if prompt is not None else None
    t0 = time.perf_counter()
    g = Generator(m, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, composer=composer,
                  repetition=repetition, max_silence_s=max_silence_s, log=log)
    if pr is not None:
        g.prime(pr.regs)
    t1 = time.perf_counter()
    regs = g.generate(frames)
    t2 = time.perf_counter()
    if with_prompt and pr is not None:
        regs = np.concatenate([pr.regs, regs])
    meta = {"clock": pr.clock, "chip": pr.chip, "frame_rate_hz": pr.frame_rate_hz} if pr is not None else {}
    out = Frames(regs=regs, title="sidlive generate", author=m.cfg.composers[g.composer_index(composer)],
                 source=str(model_path), extra={"seed": seed, "temperature": temperature, "top_k": top_k,
                                                "top_p": top_p, "repetition": repetition, "prompt": str(prompt) if prompt else None,
                                                "prompt_frames": len(pr) if pr is not None else 0}, **meta)
    if out_path.suffix.lower() == ".wav":
        write_wav(out_path, render(out, chip=chip, rate_hz=rate_hz), rate_hz)
    elif out_path.suffix.lower() == ".sid":
        export_frames(out if chip is None else dataclasses.replace(out, chip=chip), out_path)
    else:
        save(out, out_path)
    return {"out": str(out_path), "frames": int(len(regs)), "generated": frames, "model": str(model_path),
            "prompt_frames": len(pr) if pr is not None else 0, "setup_s": t1 - t0, "generate_s": t2 - t1,
            "frames_per_s": frames / max(t2 - t1, 1e-9)}
