"""Datasets: the `Dataset` type, built-in datasets shipped with the package, readers for user files."""

from audit.data.builtin import BuiltinDataset, get_dataset, list_datasets, load_dataset, load_identity_lists
from audit.data.dataset import Dataset, read_file
from audit.data.encoders import ImageEncoder, TabularEncoder, Tokenizer

__all__ = [
    "BuiltinDataset", "Dataset", "ImageEncoder", "TabularEncoder", "Tokenizer",
    "get_dataset", "list_datasets", "load_dataset", "load_identity_lists", "read_file",
]
