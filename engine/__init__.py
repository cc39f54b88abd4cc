"""Numba int8 inference of sidlive model files (.sidm). No PyTorch at run time."""
