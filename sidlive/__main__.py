import sys

from sidlive.commands.cli import main

sys.exit(main())
