"""Data sources and the in-memory image dataset every stage works on."""

from mlestar.data.dataset import ImageDataset, ImageSplit, Preprocessing
from mlestar.data.sources import create_source, data_fingerprint, list_sources, load_dataset, register_source

# Imported for their @register_source side effect: the "imagefolder" and "cifar10" sources.
from mlestar.data import cifar10, imagefolder  # noqa: E402,F401  (after sources: they register into it)

__all__ = ["ImageDataset", "ImageSplit", "Preprocessing", "create_source", "list_sources",
           "load_dataset", "register_source", "data_fingerprint"]
