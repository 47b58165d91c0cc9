"""Thin Typer commands over library functions; one file per command."""
