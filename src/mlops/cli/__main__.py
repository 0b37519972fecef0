"""`python -m mlops.cli`: the `mlops` command line."""

from mlops.cli import main

main()
