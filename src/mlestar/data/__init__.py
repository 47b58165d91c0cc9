"""Data sources and the in-memory image dataset every stage works on."""

from mlestar.data.dataset import ImageDataset, ImageSplit, Preprocessing
from mlestar.data.sources import create_source, data_fingerprint, list_sources, load_dataset, register_source

__all__ = ["ImageDataset", "ImageSplit", "Preprocessing", "create_source", "list_sources",
           "load_dataset", "register_source", "data_fingerprint"]
