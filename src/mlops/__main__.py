"""`python -m mlops`: the same command line as `mlops`."""

from mlops.cli import main

main()
