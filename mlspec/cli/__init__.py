"""The `mlspec` command line."""
