"""Numba kernels for DCT-domain work (installed as ``cdomain.kernels``)."""
