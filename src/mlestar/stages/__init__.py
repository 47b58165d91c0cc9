"""The seven MLE-Star stages, one module each.

The stage registry (:data:`mlestar.workflow.stage.STAGE_MODULES`) imports
each module by name, and each registers its stage. This package imports none
of them itself, so importing one stage does not run the others' code, and a
stage's code fingerprint covers only what it uses.
"""
