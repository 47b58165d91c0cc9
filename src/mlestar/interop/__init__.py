"""Ways out to other tools: the Python API (:mod:`.api`) and the MLflow export (:mod:`.mlflow_export`).

This package sits above the workflow (it runs and reads runs) and below the CLI
(whose ``export`` command is a thin wrapper over it).
"""
