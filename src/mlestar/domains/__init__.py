"""Problem domains behind one seam (see DOMAINS.md in the shared notes): images and tables.

The runner asks the config's domain three things: check the data source
before a run starts (:func:`preflight`), fingerprint its content cheaply
(:func:`data_fingerprint`) and load it once (:func:`load_dataset`). Everything
else a domain does lives in its seven stages, registered per domain
(:data:`mlestar.workflow.stage.STAGE_MODULES`). Image code still lives in the
layers below (``data``, ``training``, ...); table code lives in
:mod:`mlestar.domains.tables`. Both are imported lazily, so a run of one
domain never loads the other's libraries.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Callable

from mlestar.errors import MlestarError


IMAGE_PACKAGES = ("torch", "torchvision")  # mlestar[images]: tables train and serve without them


def require_images_extra() -> None:
    """Refuse image work where PyTorch is not installed, naming the extra that brings it.

    Raises:
        MlestarError: ``torch`` or ``torchvision`` cannot be imported.
    """
    missing = [name for name in IMAGE_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise MlestarError(f"image data needs {' and '.join(missing)}, which this environment lacks",
                           hint="pip install 'mlestar[images]' (tables need neither)")


def preflight(data: Any) -> None:
    """Refuse a source that cannot load, before anything is written.

    Raises:
        MlestarError: unknown source, missing path, or a file its fingerprint cannot read.
    """
    if data.domain == "images":
        require_images_extra()
        from mlestar.data.sources import create_source

        create_source(data.source)  # raises with the registered names when the source is unknown
        if data.path is not None and not Path(data.path).exists() and not data.download:
            raise MlestarError(f"data path {data.path} does not exist",
                               hint="fix data.path in the config (a folder, .tar, .tar.gz or .zip)")
    elif data.path is not None and not Path(data.path).exists():
        raise MlestarError(f"data path {data.path} does not exist",
                           hint="fix data.path in the config (a CSV, TSV, Parquet or JSON-lines file, or a "
                                "folder holding train.<ext> and optionally test.<ext>)")
    data_fingerprint(data)  # each source checks its own input here (an archive that is not one)


def data_fingerprint(data: Any) -> str:
    """Cheap fingerprint of the configured data's content (no decoding, no parsing)."""
    if data.domain == "images":
        from mlestar.data.sources import data_fingerprint as image_fingerprint

        return image_fingerprint(data)
    from mlestar.domains.tables.dataset import table_fingerprint

    return table_fingerprint(data)


def load_dataset(data: Any, seed: int, *, progress: Callable[[int, int], None] | None = None) -> Any:
    """The run's dataset, split: an ``ImageDataset`` or a ``TableDataset``.

    ``progress(done, total)`` follows the decoding of image files (an image folder or archive
    not yet in the decoded-image cache); a table is read in one call and reports nothing.
    """
    if data.domain == "images":
        from mlestar.data.sources import load_dataset as load_images

        return load_images(data, seed, progress=progress)
    from mlestar.domains.tables.dataset import load_table_dataset

    return load_table_dataset(data, seed)
