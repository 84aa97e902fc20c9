"""Data sets: the 2-D problems of Haber & Ruthotto 2017 (generated, not downloaded)."""

from .synthetic import Dataset, ellipses, one_hot, peaks, peaks_function, split, swiss_roll

__all__ = ["Dataset", "peaks", "peaks_function", "swiss_roll", "ellipses", "one_hot", "split"]
