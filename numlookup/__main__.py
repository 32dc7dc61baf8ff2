"""``python -m numlookup`` is the ``numlookup`` command."""

from numlookup.cli import main

main()
