"""The seven MLE-Star stages, one module each.

The stage registry (:func:`mlestar.workflow.stage.list_stages`) imports
:data:`STAGE_MODULES` by name, and each module registers its stage. This
package imports none of them itself, so importing one stage does not run the
others' code, and a stage's code fingerprint covers only what it uses.
"""

STAGE_MODULES = (
    "mlestar.stages.s1_situation_analysis",
    "mlestar.stages.s2_task_definition",
    "mlestar.stages.s3_action_planning",
    "mlestar.stages.s4_implementation",
    "mlestar.stages.s5_evaluation",
    "mlestar.stages.s6_refinement",
    "mlestar.stages.s7_deployment",
)
