"""What readers of a run need from the runner without importing it: file names, and the closing line's type.

The runner (:mod:`mlestar.workflow.runner`) imports the config schema, the data
layer and the stage registry; ``mlestar status``, ``show``, ``lineage`` and the
CLI's output handling need only these names. Kept here, in a module that
imports nothing, so those commands start without pydantic building its models.
The runner re-exports every name, so ``from mlestar.workflow.runner import
AUDIT_FILE`` keeps working.
"""

from __future__ import annotations

CONFIG_FILE = "config.json"  # the validated config, base units, as the run used it
LINEAGE_FILE = "lineage.db"  # in the runs folder, shared by its runs
AUDIT_FILE = "audit.jsonl"  # in the run folder: the hash-chained decision trail
ENVIRONMENT_FILE = "environment.json"


class Outcome(str):
    """A report line that states how the run ended (passed, failed, interrupted).

    Still a plain ``str`` to every ``report`` callback; a quiet CLI prints only these.
    """
