"""Relative paths in a config file mean "next to this file", whatever the working directory.

A config names files: ``data.path`` (images or a table), ``data.cache_dir`` and
``project.runs_dir``. Written relative, each is joined to the folder of the
config file that holds it, so ``mlestar run project/mle_star_config.yaml``
reads the same data from any working directory; ``~`` is expanded; absolute
paths stay as written. The run saves the resolved config, so ``--resume`` and
``mlestar reproduce`` find the same files from anywhere.

``project.runs_dir`` is resolved only when the file writes it: left out, runs
go to ``./runs`` under the working directory, where ``mlestar status``,
``show`` and ``dashboard`` look by default.

Not paths: ``refinement.storage`` is a keyword or a database URL
(``sqlite:///...`` follows SQLAlchemy's rules) and is kept as written.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

# (section, key) of every field of MlestarConfig that names a file or folder; the tables source
# (TableDataConfig) calls its file ``data.path`` like the image sources do.
PATH_FIELDS: tuple[tuple[str, str], ...] = (("data", "path"), ("data", "cache_dir"), ("project", "runs_dir"))


def resolve_path(value: str | os.PathLike[str], base: Path) -> Path:
    """``~`` expanded; a relative path joined to ``base``; an absolute one as written.

    The join is normalised as a shell's ``cd`` would (``a/../b`` is ``b``), so the saved config
    shows the path a person expects; ``base`` is made absolute first.
    """
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    return Path(os.path.normpath(base.absolute() / path))


def resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """A copy of the raw config dict with every path field (``PATH_FIELDS``) resolved against ``base``.

    Only strings and path objects are touched: a wrong type (a number, a list) is left for
    validation to report with its key path, as for any other field. Resolving twice changes
    nothing, since a resolved path is absolute.
    """
    out = copy.deepcopy(raw)
    for section, key in PATH_FIELDS:
        values = out.get(section)
        if isinstance(values, dict) and isinstance(values.get(key), (str, os.PathLike)) and values[key] != "":
            values[key] = str(resolve_path(values[key], base))
    return out
