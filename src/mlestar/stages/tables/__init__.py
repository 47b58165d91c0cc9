"""The seven MLE-Star stages for tables (CSV, TSV, Parquet, JSON lines), one module each."""
