"""`python -m spectraseg`."""

from spectraseg.cli.main import entry_point

entry_point()
