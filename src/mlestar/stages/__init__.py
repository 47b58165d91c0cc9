"""The seven MLE-Star stages; importing this package registers them in workflow order."""

from mlestar.stages import (  # noqa: F401  (each import registers a stage)
    s1_situation_analysis,
    s2_task_definition,
    s3_action_planning,
    s4_implementation,
    s5_evaluation,
    s6_refinement,
    s7_deployment,
)
