"""`python -m sidlive`: runs the `sidlive` console script."""
import sys

from sidlive.commands.cli import main

sys.exit(main())
