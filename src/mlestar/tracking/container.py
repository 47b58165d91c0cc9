"""A bundle's serving recipe: ``requirements.txt``, a ``Dockerfile`` and the model card's container section.

Both domains' bundles carry the same recipe, written by stage 7:

- ``requirements.txt``: mlestar as the wheel in ``wheels/`` (:mod:`mlestar.tracking.wheel`) and the
  third-party packages serving imports, at the versions installed where the bundle was written:
  ``==`` for packages the model's answers depend on (torch, onnxruntime, numpy, scikit-learn, the
  learner), ``>=`` for the web server, whose exact version does not change a prediction.
  ``pip install -r requirements.txt`` from the bundle folder needs nothing else but a package index:
  the wheel's own dependencies (mlestar's ``pyproject.toml``, without torch: that is the ``images``
  extra, and an image bundle pins torch itself) are installed with it, the pins above fixing the
  versions of those that matter. A table bundle's image therefore holds no PyTorch.
- ``Dockerfile``: a slim Python image of the writer's Python version, the requirements installed
  (torch from PyTorch's CPU-only index), a non-root user, and ``mlestar serve .`` on ``0.0.0.0``.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from mlestar.tracking.wheel import installed_from, mlestar_wheel

PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
DOCKERFILE = "Dockerfile"
REQUIREMENTS = "requirements.txt"
WHEELS_DIR = "wheels"
HEALTH_ROUTE = "/health"  # both servers answer it with 200 while the process runs (liveness)
# The web server under both apps: any later release serves the same answers.
WEB_PACKAGES = ("fastapi", "starlette", "uvicorn", "pydantic", "prometheus-client", "typer")
_USER_ID = 10001  # the container's non-root user; a fixed id so volumes can be granted to it


@dataclass(frozen=True)
class Pin:
    """One third-party requirement.

    Attributes:
        distribution: its name on PyPI (``scikit-learn``, ``xgboost-cpu``).
        exact: ``==`` the installed version (the model's numbers depend on it), else ``>=`` it.
    """

    distribution: str
    exact: bool


@dataclass(frozen=True)
class ServingRecipe:
    """What a bundle needs to be served anywhere: the files to write and the card's section.

    Attributes:
        requirements: ``requirements.txt``'s text.
        dockerfile: the ``Dockerfile``'s text.
        wheel: the mlestar wheel to copy into ``wheels/`` (``None``: mlestar pinned by version).
        card: the model card's "Run it in a container" section.
    """

    requirements: str
    dockerfile: str
    wheel: Path | None
    card: str


def serving_recipe(requirements: list[Pin], *, port: int, project: str, run_id: str) -> ServingRecipe:
    """The recipe for a bundle of ``project``'s run ``run_id`` served on ``port``.

    Builds (or reuses from the cache) the mlestar wheel: about 5 s the first time per code version.

    Raises:
        BundleError: the wheel could not be built.
    """
    wheel = mlestar_wheel()
    name = wheel.name if wheel is not None else None
    text = requirements_txt(requirements, wheel=name, mlestar_version=installed_version("mlestar") or "unknown",
                            mlestar_source=installed_from())
    return ServingRecipe(text, dockerfile(port=port, wheel=name, run_id=run_id), wheel,
                         card_section(image_name(project, run_id), port, wheel=wheel is not None))


def pins(exact: tuple[str, ...], at_least: tuple[str, ...] = WEB_PACKAGES) -> list[Pin]:
    """``exact`` pinned ``==``, then ``at_least`` pinned ``>=`` (a name in both stays exact)."""
    return [*(Pin(name, True) for name in exact), *(Pin(name, False) for name in at_least if name not in exact)]


def installed_version(distribution: str) -> str | None:
    """The installed version's public part (``2.4.1+cu121`` -> ``2.4.1``), or ``None`` when not installed.

    A local build label names one machine's build (CUDA, CPU); ``==2.4.1`` accepts any build of
    2.4.1, so the CPU index can supply it.
    """
    try:
        return importlib.metadata.version(distribution).split("+", 1)[0]
    except importlib.metadata.PackageNotFoundError:
        return None


def requirements_txt(requirements: list[Pin], *, wheel: str | None, mlestar_version: str,
                     mlestar_source: str | None = None) -> str:
    """The bundle's ``requirements.txt``.

    Args:
        wheel: the mlestar wheel's file name in ``wheels/``; ``None``: no wheel could be shipped
            (mlestar was installed from a wheel, not a source tree), so ``mlestar==mlestar_version``
            is pinned with a comment saying where that install came from (``mlestar_source``).
    """
    lines = ["# Serves this bundle: from this folder, `pip install -r requirements.txt`, then `mlestar serve .`",
             "# (the Dockerfile does both). `==`: the versions the bundle was exported and checked with,",
             "# for packages its answers depend on; `>=`: the web server. For CPU-only torch wheels add",
             f"# `--extra-index-url {PYTORCH_CPU_INDEX}` (the Dockerfile does).",
             *_mlestar_lines(wheel, mlestar_version, mlestar_source)]
    for pin in requirements:
        version = installed_version(pin.distribution)
        if version is None:
            lines.append(f"# {pin.distribution}: not installed where the bundle was written")
        else:
            lines.append(f"{pin.distribution}{'==' if pin.exact else '>='}{version}")
    return "\n".join(lines) + "\n"


def _mlestar_lines(wheel: str | None, version: str, source: str | None) -> list[str]:
    if wheel is not None:
        return ["# mlestar itself, built from the code that wrote this bundle; its own dependencies follow it.",
                f"./{WHEELS_DIR}/{wheel}"]
    where = f"it was installed from {source}" if source else "its install recorded no source"
    return [f"# mlestar {version} is not on PyPI and no wheel is shipped here ({where}): put that wheel,",
            f"# or mlestar's source tree, where pip finds it (`pip install --find-links DIR -r requirements.txt`).",
            f"mlestar=={version}"]


def dockerfile(*, port: int, wheel: str | None, run_id: str) -> str:
    """A ``Dockerfile`` that serves the bundle it sits in with ``mlestar serve .`` on ``0.0.0.0:port``.

    The requirements (and wheel) are copied and installed before the rest of the bundle, so a new
    model over the same requirements rebuilds only the last layers. The bundle stays owned by
    root: the server only reads it.
    """
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    health = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}{HEALTH_ROUTE}', timeout=4)"
    serve = ["mlestar", "serve", ".", "--host", "0.0.0.0", "--port", str(port)]
    lines = [
        f"# Serves this mlestar bundle (run {run_id}): docker build -t IMAGE . && docker run -p {port}:{port} IMAGE",
        f"# Python {python}: the version the bundle was written and checked with.",
        f"FROM python:{python}-slim",
        "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
        f"RUN useradd --create-home --uid {_USER_ID} --shell /usr/sbin/nologin mlestar",
        "WORKDIR /bundle",
        f"COPY {REQUIREMENTS} ./",
        *([f"COPY {WHEELS_DIR}/ ./{WHEELS_DIR}/"] if wheel is not None else []),
        "# torch from PyTorch's CPU-only index: PyPI's default torch wheels pull in gigabytes of CUDA libraries.",
        f"RUN pip install --no-cache-dir --extra-index-url {PYTORCH_CPU_INDEX} -r {REQUIREMENTS}",
        "COPY . .",
        f"USER {_USER_ID}",  # numeric: Kubernetes runAsNonRoot can check it
        f"EXPOSE {port}",
        f"HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD [\"python\", \"-c\", "
        f"\"{health}\"]",
        "CMD [" + ", ".join(f'"{part}"' for part in serve) + "]",
    ]
    return "\n".join(lines) + "\n"


def image_name(project: str, run_id: str) -> str:
    """A docker image reference for the bundle: ``<project slug>:<run id>`` within docker's name rules."""
    repository = re.sub(r"[^a-z0-9]+", "-", project.lower()).strip("-") or "mlestar-model"
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id).lstrip(".-")[:128] or "latest"
    return f"{repository}:{tag}"


def card_section(image: str, port: int, *, wheel: bool) -> str:
    """The model card's "Run it in a container" section (``wheel``: the bundle ships mlestar's wheel)."""
    mlestar = (f"mlestar itself as a wheel in `{WHEELS_DIR}/`" if wheel
               else f"mlestar pinned by version: see the comment in `{REQUIREMENTS}` for where to get it")
    return ("## Run it in a container\n\n"
            f"This folder holds a `{DOCKERFILE}` and the `{REQUIREMENTS}` it installs ({mlestar}; torch from "
            "PyTorch's CPU-only index). From this folder:\n\n"
            f"```bash\ndocker build -t {image} .\ndocker run --rm -p {port}:{port} {image}\n```\n\n"
            f"and from another shell `curl -s http://127.0.0.1:{port}{HEALTH_ROUTE}`. "
            f"Without docker: `pip install -r {REQUIREMENTS}` in a fresh virtual environment, then `mlestar serve .`.")
