"""The config model as JSON Schema, for editors that complete and check ``mle_star_config.yaml``.

Generated from :class:`~mlestar.config.schema.MlestarConfig` by pydantic, so the
titles, descriptions, defaults and allowed values are the fields' own and cannot
drift from what ``mlestar validate`` accepts. Quantities accept a number or a
string with a unit ("4h", "50MB", "90%"); ``data`` is one of two shapes, told
apart by ``source`` (``table`` for a table, else images). A YAML editor with the
YAML language server uses it through a first-line comment::

    # yaml-language-server: $schema=mle_star_config.schema.json

The schema describes mlestar's own format; sample-project configs are translated
on load (``mlestar validate`` lists how) and are not covered by it.
"""

from __future__ import annotations

from typing import Any

from mlestar.config.schema import MlestarConfig

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FILE_NAME = "mle_star_config.schema.json"


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of what a config file may say, as pydantic validates it."""
    schema = MlestarConfig.model_json_schema(mode="validation")
    return {"$schema": DRAFT, **schema, "title": "mlestar config (mle_star_config.yaml)"}
