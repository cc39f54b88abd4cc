"""`python -m training.quality MODEL [--json]`: how good are a model's generations?

n generations (default 20) of `seconds` (60) at the default temperature, each from its own
seed and prompt (a few seconds cut from a validation tune; the prompt is not measured).
Reported, with the model card's targets:
  silent frames      share of generated frames that are silent            target < 5 %
  loop collapse      a period <= 4 s repeating for > 20 s                 target: none
  technique census   onsets, arpeggios, PWM sweeps, drums, filter sweeps
                     vs the same census on real tunes (training.census)   target: within +-50 %
  novelty            longest run of frames shared verbatim with the
                     training set (training.novelty)                      target <= 200 frames (4 s)
  self-repetition    share of generated frames whose previous 32 frames
                     occurred earlier in the piece (prompt included)
                     vs real tunes (29-34 %)                              target: within +-50 %
  empty start        first sound of generations from an empty context   target: all within 0.5 s

Generators follow one protocol (the Numba engine for .sidm, the PyTorch reference sampler
for .pt checkpoints; see `load_generator`):
    generate(prompt_regs (P, 25) uint8, n_frames, seed, temperature, composer) -> (n_frames, 25) uint8
where temperature None means the generator's default and composer None means "any".
Exit code 0 when every target is met, 1 when one is missed, 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from engine.config import ModelConfig
from engine.generator import DEFAULT_MAX_SILENCE_S, Generator
from engine.weights import read_model
from sidlive.control.params import SAMPLING_DEFAULTS
from sidlive.frames import NUM_REGS, PAL_FRAME_RATE_HZ
from training import sample
from engine.silence import first_sound_frame
from training.census import TECHNIQUE_KEYS, census_counts, compare_census, pool_counts, rates
from training.config import TrainConfig
from training.dataset import is_validation as held_back
from training.model import SidModel
from training.novelty import NoveltyIndex, open_shards, read_index, tune_frames
from training.repetition import loop_collapse, self_repetition

SILENT_MAX_SHARE = 0.05
FIRST_SOUND_MAX_S = 0.5
EMPTY_START_SECONDS = 2.0
VERBATIM_MAX_FRAMES = 200
CENSUS_TOLERANCE = 0.5
DEFAULT_TEMPERATURE = 1.0
_TRAIN = TrainConfig()


class Generate(Protocol):
    """The generator protocol: (prompt, n_frames, seed, temperature, composer) -> (n_frames, 25) uint8."""
    def __call__(self, prompt_regs: np.ndarray, n_frames: int, seed: int,
                 temperature: float | None, composer: str | None) -> np.ndarray: ...


# ---------------------------------------------------------------------------- report

def quality_report(generate_fn: Generate, prompts: list[np.ndarray], real_tunes: list[np.ndarray],
                   novelty_index: NoveltyIndex | None, n: int = 20, seconds: float = 60.0,
                   temperature: float | None = None, seeds: list[int] | None = None,
                   composers: list[str | None] | None = None,
                   frame_rate_hz: float = PAL_FRAME_RATE_HZ, log=None) -> dict:
    """Generate n sequences (prompt i % len(prompts), seeds[i]) and measure them against real tunes.

    `log(str)`, when given, hears one line per generation (the reference sampler takes minutes).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 < seconds <= 3600:
        raise ValueError(f"seconds must be in (0, 3600], got {seconds}")
    if not prompts:
        raise ValueError("prompts: need at least one (P, 25) uint8 prompt")
    for i, p in enumerate(prompts):
        p = np.asarray(p)
        if p.ndim != 2 or p.shape[1] != NUM_REGS or p.dtype != np.uint8 or len(p) < 1:
            raise ValueError(f"prompts[{i}]: expected (P >= 1, {NUM_REGS}) uint8, got {p.shape} {p.dtype}")
    if not real_tunes:
        raise ValueError("real_tunes: need at least one real tune for the census comparison")
    seeds = list(range(1000, 1000 + n)) if seeds is None else list(seeds)
    if len(seeds) < n:
        raise ValueError(f"seeds: need {n}, got {len(seeds)}")
    composers = [None] * n if composers is None else list(composers)
    if len(composers) < n:
        raise ValueError(f"composers: need {n}, got {len(composers)}")
    n_frames = max(1, int(round(seconds * frame_rate_hz)))

    gens, counts, reps = [], [], [0, 0]
    longest = {"frames": 0}
    for i in range(n):
        t0 = time.perf_counter()
        out = generate_fn(np.asarray(prompts[i % len(prompts)]), n_frames, seeds[i], temperature, composers[i])
        gen_s = time.perf_counter() - t0
        out = np.asarray(out)
        if out.shape != (n_frames, NUM_REGS) or out.dtype != np.uint8:
            raise ValueError(f"generation {i} (seed {seeds[i]}): generator returned {out.shape} {out.dtype}, "
                             f"expected ({n_frames}, {NUM_REGS}) uint8")
        c = census_counts(out)
        counts.append(c)
        piece = np.concatenate([np.asarray(prompts[i % len(prompts)]), out])
        hits, frames = self_repetition(piece, start=len(piece) - len(out))
        reps[0] += hits
        reps[1] += frames
        collapsed, period, start = loop_collapse(out, frame_rate_hz=frame_rate_hz)
        row = {"index": i, "seed": seeds[i], "prompt": i % len(prompts), "composer": composers[i],
               "generate_s": gen_s, "silent_share": c["silent_frames"] / c["frames"],
               "self_repetition": hits / max(frames, 1),
               "loop_collapse": {"collapsed": collapsed, "period_frames": period, "start_frame": start},
               "census": {k: v for k, v in rates(c, frame_rate_hz).items() if k in TECHNIQUE_KEYS}}
        if novelty_index is not None:
            nov = novelty_index.longest_run(out, frame_rate_hz=frame_rate_hz)
            row["novelty"] = nov
            if nov["frames"] > longest["frames"]:
                longest = dict(nov, generation=i)
        gens.append(row)
        if log is not None:
            log(f"generation {i + 1}/{n}: seed {seeds[i]}, {gen_s:.1f} s, silent {100 * row['silent_share']:.1f} %, "
                f"loop {'yes' if collapsed else 'no'}, verbatim {row.get('novelty', {}).get('frames', '-')} frames")

    gen_census = rates(pool_counts(counts), frame_rate_hz)
    real_census = rates(pool_counts([census_counts(np.asarray(r)) for r in real_tunes]), frame_rate_hz)
    comparison = compare_census(gen_census, real_census, tolerance=CENSUS_TOLERANCE)
    real_reps = [self_repetition(np.asarray(r)) for r in real_tunes]
    repetition = {"generated": reps[0] / max(reps[1], 1),
                  "real": sum(h for h, _ in real_reps) / max(sum(f for _, f in real_reps), 1)}
    repetition["ratio"] = repetition["generated"] / repetition["real"] if repetition["real"] else float("nan")
    empty = _empty_starts(generate_fn, seeds[:n], temperature, frame_rate_hz)
    n_collapsed = sum(g["loop_collapse"]["collapsed"] for g in gens)
    targets = {
        "silent_below_5pct": gen_census["silent_share"] < SILENT_MAX_SHARE,
        "no_loop_collapse": n_collapsed == 0,
        "census_within_50pct": all(r["within"] for r in comparison if r["key"] in TECHNIQUE_KEYS),
        "self_repetition_within_50pct": abs(repetition["ratio"] - 1.0) <= CENSUS_TOLERANCE,
        "sound_within_0_5s_from_empty": empty["within"] == empty["n"],
        "verbatim_at_most_200_frames": (None if novelty_index is None
                                        else longest["frames"] <= VERBATIM_MAX_FRAMES),
    }
    if novelty_index is not None and longest["frames"] == 0:
        longest = dict(gens[0]["novelty"], generation=None)
    return {
        "n": n, "seconds": seconds, "frames_per_generation": n_frames, "temperature": temperature,
        "frame_rate_hz": frame_rate_hz,
        "silent_share": gen_census["silent_share"], "loop_collapses": n_collapsed,
        "census_generated": gen_census, "census_real": real_census, "real_tunes": len(real_tunes),
        "comparison": comparison, "novelty": longest if novelty_index is not None else None,
        "self_repetition": repetition, "empty_start": empty,
        "targets": targets, "pass": all(v for v in targets.values() if v is not None),
        "generations": gens,
    }


def _empty_starts(generate_fn: Generate, seeds: list[int], temperature, frame_rate_hz: float) -> dict:
    """Generations from an empty context (no prompt: the SID after reset): when each first sounds."""
    n_frames = int(round(EMPTY_START_SECONDS * frame_rate_hz))
    first = [first_sound_frame(np.asarray(generate_fn(np.zeros((0, NUM_REGS), np.uint8), n_frames, s, temperature,
                                                       None))) for s in seeds]
    secs = [f / frame_rate_hz if f is not None else None for f in first]
    return {"n": len(seeds), "first_sound_s": secs,
            "within": sum(1 for x in secs if x is not None and x <= FIRST_SOUND_MAX_S),
            "max_s": max((x for x in secs if x is not None), default=None), "never": secs.count(None)}


# ---------------------------------------------------------------------------- inputs

def load_generator(path: str | Path, top_k: int = 0, top_p: float = 1.0, backend: str = "auto",
                   repetition: float = 1.0, max_silence_s: float = DEFAULT_MAX_SILENCE_S) -> Generate:
    """A `Generate` from a .sidm export or a .pt checkpoint.

    backend "engine": the Numba engine (engine.generator.Generator, .sidm only, fast);
    "torch": the PyTorch reference sampler (training.sample.generate); "auto": the engine
    for .sidm, torch for .pt. Both give the same frames for the same weights, prompt and seed.
    A .pt checkpoint is the trainer's (training.train): a dict with "model_config" and
    "model" (the state dict), and "train_config" when present; the returned function
    carries that as `.train_config` (None for .sidm) so the caller can redo its split.
    """
    path = Path(path)
    if backend not in ("auto", "engine", "torch"):
        raise ValueError(f"backend must be auto, engine or torch, got {backend!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    if backend == "engine" or (backend == "auto" and path.suffix == ".sidm"):
        if path.suffix != ".sidm":
            raise ValueError(f"{path}: the engine runs .sidm exports (python -m training.export), not {path.suffix}")
        return _engine_generator(path, top_k, top_p, repetition, max_silence_s)
    train_config = None
    if path.suffix == ".sidm":
        f, cfg = read_model(path)
        model = SidModel(cfg)
        model.load_export_state(f.dequantized())
    else:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 (torch raises several kinds for a bad file)
            raise ValueError(f"{path}: cannot read as a PyTorch checkpoint ({e})") from None
        if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model_config"), dict) \
                or not isinstance(ckpt.get("model"), dict):
            keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
            raise ValueError(f"{path}: checkpoint {keys}: expected a dict with 'model_config' and 'model'")
        model = SidModel(ModelConfig.from_dict(ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
        train_config = ckpt.get("train_config") if isinstance(ckpt.get("train_config"), dict) else None
    model.eval()
    default_t = getattr(sample, "DEFAULT_TEMPERATURE", DEFAULT_TEMPERATURE)

    def generate(prompt_regs, n_frames, seed, temperature, composer):
        t = default_t if temperature is None else temperature
        return sample.generate(model, prompt_regs, n_frames, composer=composer, temperature=t,
                               top_k=top_k, top_p=top_p, seed=seed, repetition=repetition,
                               max_silence_s=max_silence_s)

    generate.train_config = train_config
    return generate


def _engine_generator(path: Path, top_k: int, top_p: float, repetition: float, max_silence_s: float) -> Generate:
    g = Generator(path, top_k=top_k, top_p=top_p, repetition=repetition, max_silence_s=max_silence_s,
                  log=lambda line: print(line, file=sys.stderr))
    default_t = g.settings["temperature"]

    def generate(prompt_regs, n_frames, seed, temperature, composer):
        g.reset()
        g.set_sampling(temperature=default_t if temperature is None else temperature, composer=composer)
        g.reseed(seed)
        g.prime(prompt_regs)
        return g.generate(n_frames)

    generate.train_config = None
    return generate


def is_validation(entry: dict, val_permille: int, seed: int) -> bool:
    """The trainer's split (training.dataset.is_validation on the tune's md5); no md5: training."""
    md5 = entry.get("md5")
    return isinstance(md5, str) and bool(md5) and held_back(md5, val_permille, seed)


def pick_prompts(entries: list[dict], shards: dict, n: int, prompt_seconds: float, start_seconds: float,
                 frame_rate_hz: float = PAL_FRAME_RATE_HZ) -> tuple[list[np.ndarray], list[dict]]:
    """n prompts from n different tunes (distinct md5, evenly spread over the md5 order)."""
    p_len = max(1, int(round(prompt_seconds * frame_rate_hz)))
    p0 = int(round(start_seconds * frame_rate_hz))
    seen, ok = set(), []
    for e in sorted(entries, key=lambda e: (e.get("md5") or "", e["path"])):
        key = e.get("md5") or e["path"]
        if key not in seen and e["frames"] >= p0 + p_len:
            seen.add(key)
            ok.append(e)
    if not ok:
        raise ValueError(f"no validation tune has {p0 + p_len} frames for a prompt")
    chosen = [ok[int(i * len(ok) / n)] for i in range(min(n, len(ok)))]
    return [np.array(tune_frames(shards, e)[p0:p0 + p_len]) for e in chosen], chosen


def pick_real(entries: list[dict], shards: dict, n_tunes: int, seconds: float,
              frame_rate_hz: float = PAL_FRAME_RATE_HZ) -> list[np.ndarray]:
    """The first `seconds` of up to n_tunes tunes, evenly spread over the md5 order."""
    ents = sorted(entries, key=lambda e: (e.get("md5") or "", e["path"]))
    ents = [e for e in ents if e["frames"] > 0]
    step = max(1.0, len(ents) / max(n_tunes, 1))
    chosen = [ents[int(i * step)] for i in range(min(n_tunes, len(ents)))]
    n_frames = int(round(seconds * frame_rate_hz))
    return [np.array(tune_frames(shards, e)[:n_frames]) for e in chosen]


# ---------------------------------------------------------------------------- output

def format_report(report: dict) -> str:
    """Plain-text tables of a `quality_report` result."""
    lines = [f"{report['n']} generations x {report['seconds']:g} s "
             f"(temperature {report['temperature'] if report['temperature'] is not None else 'default'}), "
             f"real census over {report['real_tunes']} tunes", ""]
    lines.append(f"{'technique':<20}{'unit':<14}{'generated':>11}{'real':>11}{'ratio':>8}  within +-50%")
    for r in report["comparison"]:
        lines.append(f"{r['key']:<20}{r['unit']:<14}{r['generated']:>11.4f}{r['real']:>11.4f}"
                     f"{r['ratio']:>8.2f}  {'yes' if r['within'] else 'NO'}")
    nov = report["novelty"]
    rp, es = report["self_repetition"], report["empty_start"]
    lines += ["", f"silent frames       {100 * report['silent_share']:.2f} %",
              f"loop collapses      {report['loop_collapses']} of {report['n']}",
              f"self-repetition     {100 * rp['generated']:.1f} % (real {100 * rp['real']:.1f} %, ratio {rp['ratio']:.2f})",
              f"empty start         {es['within']}/{es['n']} sound within {FIRST_SOUND_MAX_S} s "
              f"(latest {es['max_s'] if es['max_s'] is not None else '-'} s, never {es['never']})"]
    if nov is not None:
        where = f" ({nov['path']} frame {nov['tune_offset']}, generation {nov['generation']})" if nov["frames"] else ""
        lines.append(f"longest verbatim    {nov['frames']} frames = {nov['seconds']:.2f} s{where}")
    lines += ["", "targets:"]
    lines += [f"  {k:<30}{'n/a' if v is None else ('pass' if v else 'FAIL')}" for k, v in report["targets"].items()]
    lines += ["", f"{'gen':>4}{'seed':>7}{'silent%':>9}{'loop':>7}{'verbatim':>10}{'gen s':>8}"]
    for g in report["generations"]:
        lc = g["loop_collapse"]
        loop = f"{lc['period_frames']}f" if lc["collapsed"] else "-"
        verb = g["novelty"]["frames"] if "novelty" in g else "-"
        lines.append(f"{g['index']:>4}{g['seed']:>7}{100 * g['silent_share']:>9.2f}{loop:>7}{verb:>10}"
                     f"{g['generate_s']:>8.1f}")
    return "\n".join(lines)


def _entry_key(e: dict) -> tuple:
    return e["path"], e["shard"], e["offset"], e["frames"]


def _jsonable(x):
    """Non-finite floats (a ratio over a real rate of 0) become null; numpy scalars plain."""
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `python -m training.quality`."""
    p = argparse.ArgumentParser(prog="python -m training.quality", description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="model file: .sidm export or .pt checkpoint")
    p.add_argument("--data", default=None,
                   help="dataset dir (index.jsonl + shards/); default: the checkpoint's data_dir, else data/hvsc120")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--n", type=int, default=20, help="generations")
    p.add_argument("--seconds", type=float, default=60.0, help="seconds per generation")
    p.add_argument("--temperature", type=float, default=SAMPLING_DEFAULTS["temperature"])
    p.add_argument("--backend", choices=("auto", "engine", "torch"), default="auto",
                   help="auto: the Numba engine for .sidm, the PyTorch reference sampler for .pt")
    p.add_argument("--top-k", type=int, default=SAMPLING_DEFAULTS["top_k"])
    p.add_argument("--top-p", type=float, default=SAMPLING_DEFAULTS["top_p"])
    p.add_argument("--repetition", type=float, default=SAMPLING_DEFAULTS["repetition"],
                   help="pointer models: 0 never copies, 1 as trained (the defaults: the live instrument's)")
    p.add_argument("--max-silence-s", type=float, default=DEFAULT_MAX_SILENCE_S, help="the silence guard; 0 = off")
    p.add_argument("--seed", type=int, default=1000, help="first seed; generation i uses seed + i")
    p.add_argument("--prompt-seconds", type=float, default=3.0)
    p.add_argument("--prompt-start-seconds", type=float, default=5.0, help="where prompts are cut in their tune")
    p.add_argument("--composer", choices=("prompt", "any"), default="prompt",
                   help="condition on the prompt tune's author, or on 'any'")
    p.add_argument("--real-tunes", type=int, default=200, help="validation tunes for the real census")
    p.add_argument("--val-permille", type=int, default=None,
                   help="validation tunes per 1000; default: the checkpoint's val_permille, else the trainer default")
    p.add_argument("--split-seed", type=int, default=None,
                   help="seed of the trainer's split; default: the checkpoint's seed, else the trainer default")
    p.add_argument("--novelty-cache", default=None, help=".npz to load/save the training-set window index")
    return p


def main(argv: list[str] | None = None) -> int:
    """Command line: generate, measure and report; returns 0 when every target is met, 1 if not, 2 on bad input."""
    a = build_parser().parse_args(argv)
    try:
        gen = load_generator(a.model, top_k=a.top_k, top_p=a.top_p, backend=a.backend, repetition=a.repetition,
                             max_silence_s=a.max_silence_s)
    except (OSError, ValueError) as e:    # a missing or broken model file, a setting out of its range
        print(f"python -m training.quality: {e}", file=sys.stderr)
        return 2
    tc = gen.train_config or {}
    data = a.data or tc.get("data_dir") or _TRAIN.data_dir
    val_permille = a.val_permille if a.val_permille is not None else tc.get("val_permille", _TRAIN.val_permille)
    split_seed = a.split_seed if a.split_seed is not None else tc.get("seed", _TRAIN.seed)
    if not 0 <= val_permille <= 1000:
        print(f"--val-permille must be in 0..1000, got {val_permille}", file=sys.stderr)
        return 2
    entries = read_index(data)
    held = [is_validation(e, val_permille, split_seed) for e in entries]
    val, train = [e for e, h in zip(entries, held) if h], [e for e, h in zip(entries, held) if not h]
    if not val or not train:
        print(f"{data}: need validation and training tunes, got {len(val)} and {len(train)} "
              f"(val_permille {val_permille}, split seed {split_seed})", file=sys.stderr)
        return 2
    shards = open_shards(data, entries)
    prompts, prompt_entries = pick_prompts(val, shards, a.n, a.prompt_seconds, a.prompt_start_seconds)
    real = pick_real(val, shards, a.real_tunes, a.seconds)
    cache = Path(a.novelty_cache) if a.novelty_cache else None
    index = NoveltyIndex.load(cache, data) if cache is not None and cache.is_file() else None
    if index is not None and [_entry_key(e) for e in index.entries] != [_entry_key(e) for e in train]:
        index = None  # built from another dataset or split: rebuild
    if index is None:
        index = NoveltyIndex.from_tunes(shards, train)
        if cache is not None:
            index.save(cache)
    composers = [e.get("author") if a.composer == "prompt" else None for e in (prompt_entries * a.n)[:a.n]]
    report = quality_report(gen, prompts, real, index, n=a.n, seconds=a.seconds, temperature=a.temperature,
                            seeds=[a.seed + i for i in range(a.n)], composers=composers,
                            log=lambda line: print(line, file=sys.stderr, flush=True))
    report.update(model=str(a.model), data=str(data), val_permille=val_permille, split_seed=split_seed,
                  sampling={k: getattr(a, k) for k in ("temperature", "top_k", "top_p", "repetition", "max_silence_s")})
    report["prompt_tunes"] = [e["path"] for e in prompt_entries]
    print(json.dumps(_jsonable(report), indent=1) if a.json else format_report(report))
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
