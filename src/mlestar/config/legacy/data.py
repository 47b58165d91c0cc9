"""Legacy ``data`` (or ``dataset``) and ``paths`` sections -> ``data.*``, ``project.runs_dir``.

The data set's name picks the source (``CIFAR-10`` -> cifar10, ``digits``);
a path to images with no known name reads them as an image folder. Split
shares are converted to mlestar's: ``test_split`` is the test share of all
images, ``validation_split`` a share of all images too, so the validation
share of what the test leaves is ``val / (1 - test)``. The CIFAR-10 project's
``preprocessing.augmentation.train`` list (RandomCrop with padding,
RandomHorizontalFlip, ...) becomes ``training.augmentation``.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from mlestar.config.legacy.common import (Handler, Translation, as_list, as_mapping, item_name, norm, number, to,
                                         walk, warn_with)
from mlestar.config.schema import DataConfig
from mlestar.errors import ConfigError

_SOURCES = {"digits": "digits", "sklearndigits": "digits", "cifar10": "cifar10", "cifar": "cifar10",
            "imagefolder": "imagefolder"}
# Split folder names the imagefolder source recognises (data/imagefolder.py: SPLIT_FOLDERS).
_SPLIT_FOLDERS = {"train", "val", "valid", "validation", "test"}
_FLIPS = {"randomhorizontalflip", "horizontalflip", "hflip", "flip", "randomflip", "fliplr",
          "randomhorizontalflipping"}
_SHIFTS = {"randomcrop", "randomtranslation", "translate", "translation", "randomshift", "shift", "randomcropping"}
_NO_OPS = {"none", "totensor", ""}
_FROM_DATA = "mlestar counts classes and images in the data itself"
_DATA_WHY = {
    "classes": _FROM_DATA, "num_classes": _FROM_DATA, "class_names": _FROM_DATA, "train_samples": _FROM_DATA,
    "test_samples": _FROM_DATA, "total_samples": _FROM_DATA,
    "normalization": "mlestar normalizes with the training split's own per-channel mean and std",
    "processed_data_path": "mlestar decodes images itself and caches them (data.cache_dir)",
    "processed_data": "mlestar decodes images itself and caches them (data.cache_dir)",
    "external_data_path": "mlestar reads one image source (data.path)",
    "external_data": "mlestar reads one image source (data.path)",
}


def translate_data(tr: Translation, value: Any, path: str) -> None:
    """A legacy ``data``/``dataset`` section (either sample-project shape)."""
    section = as_mapping(tr, value, path) or {}
    _splits(tr, section, path)
    rest = {k: v for k, v in section.items() if k not in _SPLIT_KEYS}
    walk(tr, rest, path, _DATA_HANDLERS, _data_key)


def _data_key(tr: Translation, key: str, item: Any, path: str) -> None:
    """An mlestar data field passes through; anything else is warned with its reason."""
    if key in DataConfig.model_fields:
        tr.put(f"data.{key}", item, path)
    else:
        tr.warn(path, _DATA_WHY.get(key, "descriptive only; ignored"))


_SPLIT_KEYS = ("validation_split", "val_split", "test_split", "train_split")


def _splits(tr: Translation, section: dict[str, Any], path: str) -> None:
    """``train/validation/test_split`` (shares of all images) -> ``data.test_fraction``, ``data.val_fraction``."""
    test = number(section.get("test_split"))
    val_key = next((k for k in ("validation_split", "val_split") if section.get(k) is not None), None)
    val = number(section.get(val_key)) if val_key else None
    if test is not None:
        tr.put("data.test_fraction", test, f"{path}.test_split")
    if val is not None and val_key is not None:
        tr.put("data.val_fraction", round(val / (1 - test), 6) if test is not None and test < 1 else val,
               f"{path}.{val_key}")
    train = number(section.get("train_split"))
    if train is not None and not (val is not None and test is not None and abs(train + val + test - 1) < 1e-6):
        tr.warn(f"{path}.train_split", "the training share is what the validation and test shares leave; "
                                       "set validation_split and test_split instead")
    if section.get("val_split") is not None and val_key == "validation_split":
        tr.warn(f"{path}.val_split", f"data.val_fraction is already set from {path}.validation_split; ignored")


def _dataset_name(tr: Translation, value: Any, path: str) -> None:
    """A known name picks ``data.source``; an unknown one is decided once paths are known."""
    source = _SOURCES.get(norm(value))
    if source is not None:
        tr.put("data.source", source, path)
    elif "dataset" not in tr.pending:
        tr.pending["dataset"] = (value, path)
    else:
        tr.warn(path, f"the data set is already named by {tr.pending['dataset'][1]}; ignored")


def _image_size(tr: Translation, value: Any, path: str) -> None:
    """``32`` or ``[32, 32, 3]`` (HWC; CHW is recognised) -> ``data.image_size`` and ``data.channels``."""
    if not isinstance(value, (list, tuple)):
        tr.put("data.image_size", value, path)
        return
    dims = [int(n) for n in (number(v) for v in value) if n is not None]
    if len(dims) == 3 and dims[0] in (1, 3) and dims[1] == dims[2] and dims[2] not in (1, 3):
        dims = [dims[1], dims[2], dims[0]]  # CHW -> HWC
    if len(dims) < 2 or dims[0] != dims[1]:
        tr.warn(path, f"mlestar resizes to a square side (data.image_size); {value!r} is not square, so images "
                      "keep the size stage 1 finds")
        return
    tr.put("data.image_size", dims[0], path)
    if len(dims) == 3 and dims[2] in (1, 3):
        tr.put("data.channels", dims[2], path)
    elif len(dims) == 3:
        tr.warn(path, f"mlestar reads 1 or 3 channels, not {dims[2]}; data.channels is not set")


def _always(what: str) -> Handler:
    """Handler for a switch mlestar always has on (shuffle, stratify): true is honoured, false is warned."""

    def handler(tr: Translation, value: Any, path: str) -> None:
        if value is not True:
            tr.warn(path, f"mlestar always {what}")

    return handler


def _preprocessing(tr: Translation, value: Any, path: str) -> None:
    walk(tr, value, path, {"augmentation": translate_augmentation},
         warn_with(_DATA_WHY, "mlestar preprocesses images itself (decode, convert, resize, normalize); ignored"))


def translate_augmentation(tr: Translation, value: Any, path: str) -> None:
    """``[RandomCrop, RandomHorizontalFlip, ...]``, ``{train: [...], test: [none]}``, a bool, or an mlestar name."""
    if isinstance(value, bool):
        if value is False:
            tr.put("training.augmentation", "none", path)
        return  # true: stage 1 chooses (auto), which is what an unspecified augmentation means
    if isinstance(value, str) and value in ("auto", "none", "flip", "translate", "flip_translate"):
        tr.put("training.augmentation", value, path)
    elif isinstance(value, (list, str)):
        _augmentation_list(tr, value if isinstance(value, list) else [value], path)
    elif isinstance(value, dict):
        _augmentation_sections(tr, value, path)
    else:
        tr.warn(path, f"expected a list of transforms, got {value!r}; ignored")


def _augmentation_sections(tr: Translation, value: dict[str, Any], path: str) -> None:
    """``{train: [...], validation: [none], test: [none]}`` or ``{enabled: true, techniques: [...]}``."""
    for key, item in value.items():
        sub = f"{path}.{key}"
        if key in ("train", "techniques", "transforms"):
            _augmentation_list(tr, as_list(item), sub)
        elif key in ("validation", "val", "test", "eval", "inference"):
            if any(norm(item_name(t)) not in _NO_OPS for t in as_list(item)):
                tr.warn(sub, "mlestar never augments validation or test images (test-time augmentation: "
                             "evaluation.tta)")
        elif key == "enabled":
            translate_augmentation(tr, bool(item), sub)
        else:
            tr.warn(sub, "mlestar's flips mirror a random half of each batch and translations shift every image; "
                         "ignored")


def _augmentation_list(tr: Translation, items: list[Any], path: str) -> None:
    """Flips and shifts in the list set the augmentation; every other transform is warned by name."""
    found = set()
    for item in items:
        name = item_name(item)
        key = norm(name)
        params = item.get(name) if isinstance(item, dict) else None
        if key in _FLIPS:
            found.add("flip")
            _flip_params(tr, params, f"{path}.{name}")
        elif key in _SHIFTS:
            found.add("translate")
            _shift_params(tr, params, f"{path}.{name}")
        elif key not in _NO_OPS:
            tr.warn(f"{path}.{name}", "no equivalent in mlestar (it flips and translates); left out")
    if items:
        kind = "flip_translate" if found == {"flip", "translate"} else (found.pop() if found else "none")
        tr.put("training.augmentation", kind, path)


def _flip_params(tr: Translation, params: Any, path: str) -> None:
    for key, value in (params or {}).items() if isinstance(params, dict) else ():
        if not (key in ("p", "probability") and number(value) == 0.5):
            tr.warn(f"{path}.{key}", "mlestar mirrors a random half of each batch (p = 0.5)")


def _shift_params(tr: Translation, params: Any, path: str) -> None:
    for key, value in (params or {}).items() if isinstance(params, dict) else ():
        if key == "size" and value == tr.get("data.image_size"):
            continue  # cropped back to the image's own size: what mlestar does
        why = ("stage 3 chooses the padding (the airbench recipe's 2 px, otherwise stage 1's recommendation)"
               if key == "padding" else "mlestar shifts by up to the padding and crops back to the image's size")
        tr.warn(f"{path}.{key}", f"{why}; {value!r} is not used")


def translate_paths(tr: Translation, value: Any, path: str) -> None:
    """The template's ``paths`` (or ``data.paths``): the data folder and the output folder map."""
    section = as_mapping(tr, value, path) or {}
    _split_paths(tr, section, path)
    rest = {k: v for k, v in section.items() if k not in _SPLIT_PATH_KEYS}
    walk(tr, rest, path, _PATH_HANDLERS, _path_key)


_SPLIT_PATH_KEYS = ("train_data", "val_data", "validation_data", "test_data")


def _split_paths(tr: Translation, section: dict[str, Any], path: str) -> None:
    """``train_data: data/train/`` and friends: their common parent is an image folder with split folders."""
    given = {k: PurePosixPath(str(section[k])) for k in _SPLIT_PATH_KEYS if section.get(k) is not None}
    train = given.get("train_data")
    root = train.parent if train is not None and train.name.lower() in _SPLIT_FOLDERS else None
    for key, folder in given.items():
        if root is not None and folder.parent == root and folder.name.lower() in _SPLIT_FOLDERS:
            if key == "train_data":
                tr.put("data.path", str(root), f"{path}.{key}")
            continue
        tr.warn(f"{path}.{key}", f"mlestar reads splits as <data.path>/<train|val|test>/<class>/; {str(folder)!r} "
                                 "is not such a split folder next to train_data")


def _path_key(tr: Translation, key: str, item: Any, path: str) -> None:
    if key in ("model_root", "models", "checkpoints"):
        tr.warn(path, "models and checkpoints are written into the run folder (project.runs_dir)")
    else:
        tr.warn(path, _DATA_WHY.get(key, f"mlestar has no {key} setting; ignored"))


_TO_PATH = to("data.path", str)
_DATA_HANDLERS: dict[str, Handler] = {
    "dataset": _dataset_name, "dataset_name": _dataset_name, "name": _dataset_name, "source": _dataset_name,
    "path": _TO_PATH, "data_dir": _TO_PATH, "data_path": _TO_PATH, "raw_data_path": _TO_PATH, "root": _TO_PATH,
    "root_dir": _TO_PATH, "data_root": _TO_PATH, "paths": translate_paths,
    "image_size": _image_size, "preprocessing": _preprocessing, "augmentation": translate_augmentation,
    "random_seed": to("seed"), "seed": to("seed"),
    "shuffle": _always("shuffles the training images"),
    "stratify": _always("stratifies its splits by class"), "stratification": _always("stratifies its splits by class"),
}

_PATH_HANDLERS: dict[str, Handler] = {
    "data": _TO_PATH, "data_root": _TO_PATH, "data_dir": _TO_PATH, "raw_data": _TO_PATH, "dataset": _TO_PATH,
    "output_root": to("project.runs_dir", str), "output_dir": to("project.runs_dir", str),
    "outputs": to("project.runs_dir", str),
}


def finish_data(tr: Translation) -> None:
    """Decide the source once every section is read.

    Raises:
        ConfigError: a data set mlestar has no source for, and no path to its images.
    """
    pending = tr.pending.get("dataset")
    if tr.get("data.source") is None and pending is not None:
        _unknown_dataset(tr, *pending)
    elif pending is not None:
        tr.warn(pending[1], f"data.source is already {tr.get('data.source')!r} from {tr.origin['data.source']}; "
                            "ignored")
    elif tr.get("data.source") is None and tr.get("data.path") is not None:
        tr.put("data.source", "imagefolder", tr.origin["data.path"])
    if tr.get("data.source") == "digits" and tr.get("data.path") is not None:
        origin = tr.remove("data.path")
        tr.warn(origin or "data.path", "digits is bundled with scikit-learn; the path is not read")


def _unknown_dataset(tr: Translation, name: Any, path: str) -> None:
    """A named data set mlestar has no source for: its images under ``data.path``, else a refusal."""
    folder = tr.get("data.path")
    if folder is None:
        raise ConfigError(f"{tr.source}: {path} {name!r} is not a data set mlestar can read, and no path to its "
                          "images is given",
                          hint="name digits or cifar10, or give the image folder (<root>/<class>/<image>) as "
                               "data.path or paths.data")
    tr.put("data.source", "imagefolder", tr.origin["data.path"])
    tr.warn(path, f"{name!r} is not a data source mlestar has; the images under {folder!r} are read as an image "
                  "folder")
