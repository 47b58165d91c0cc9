"""Write a stage report three ways: Markdown, self-contained HTML, and JSON.

The HTML is rendered from the same Markdown (python-markdown, tables) with
every referenced PNG embedded as a data URI, so the file can be mailed or
opened offline. Text from data (class names, paths) is HTML-escaped before
rendering: a class called ``<script>`` shows as text, never runs.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

from mlestar.utils.io import atomic_write_json, atomic_write_text

_IMG = re.compile(r'src="([^":/]+\.png)"')
_STYLE = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
          "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
          "th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee;margin:.5em 0}code{background:#f6f6f6}")


def markdown_to_html(markdown_text: str, title: str, image_dir: Path) -> str:
    """A standalone HTML page for ``markdown_text`` with PNGs from ``image_dir`` inlined."""
    import markdown

    # Our Markdown holds no intentional raw HTML, so escaping <, > and & first makes any
    # data-derived text inert while leaving Markdown syntax (tables, images) intact.
    body = markdown.markdown(html.escape(markdown_text, quote=False), extensions=["tables"])
    body = _IMG.sub(lambda m: f'src="{_data_uri(image_dir / m.group(1))}"', body)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>\n")


def _data_uri(path: Path) -> str:
    if not path.exists():
        return path.name  # leave the broken reference visible rather than failing the report
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def write_report(out_dir: Path, stem: str, title: str, markdown_text: str, data: dict[str, Any]) -> list[Path]:
    """Write ``<stem>.md``, ``<stem>.html`` and ``<stem>.json`` into ``out_dir``; returns the paths."""
    md = atomic_write_text(out_dir / f"{stem}.md", markdown_text)
    page = atomic_write_text(out_dir / f"{stem}.html", markdown_to_html(markdown_text, title, out_dir))
    js = atomic_write_json(out_dir / f"{stem}.json", data)
    return [md, page, js]
