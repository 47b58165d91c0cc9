"""A read-only web UI over a runs folder: ``mlestar dashboard [RUNS_DIR]``.

Modules: ``app`` (create_app, serve), ``api`` (JSON routes), ``pages`` (HTML
shell, file downloads), ``security`` (token, host and method guard, CSP),
``files`` (confined paths), ``runs`` (the cached runs list), ``views`` (run
page, audit, lineage), ``panels`` (stage panels, live training curves),
``compare``. The browser side is plain JavaScript and CSS under ``static/``,
with charts drawn as inline SVG: nothing is fetched from the network.
"""

from __future__ import annotations

from mlestar.dashboard.app import create_app, serve

__all__ = ["create_app", "serve"]
