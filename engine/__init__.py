"""Numba int8 inference of sidlive model files (.sidm). No PyTorch at run time.

    weights.py    load + check a .sidm, pack it into flat int8/float32 blobs for the kernels
    kernels.py    int8 matvec, RMSNorm, rotary attention over a K/V ring, global step,
                  local-decoder token, readout (Numba, nogil)
    sampler.py    the reference sampler's steps and SplitMix64 RNG (Numba)
    frame.py      the two entry kernels: append frames, generate n frames
    jit.py        compile / load the kernels (progress message, stale-cache guard)
    matches.py    longest earlier match per register group: hash table, rollback (Numba)
    candidates.py the 8 candidate sources for the next frame (Numba per frame, numpy per window)
    generator.py  Generator: the state API (prime, generate, rollback, reseed, settings)
    config.py     ModelConfig: travels with the weights (trainer, exporter, engine)
    sidm.py       the .sidm file format (numpy only)
"""
