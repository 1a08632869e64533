"""``python -m advisor.cli ...``: the same command line as ``advise ...``."""

from advisor.cli import main

main(prog_name="advise")
