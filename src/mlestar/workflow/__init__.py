"""The workflow engine: stage contract and registry, runner, gates, remedies, run state."""
