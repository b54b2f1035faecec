"""Command-line entry points. Exceptions become exit codes here and nowhere else."""
