"""``python -m pdeforge`` runs the command line."""

from pdeforge.cli import main

main()
