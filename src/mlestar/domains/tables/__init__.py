"""Tables: CSV, TSV, Parquet and JSON-lines files read with pyarrow, typed column by column."""
