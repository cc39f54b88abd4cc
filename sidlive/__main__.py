import sys

from sidlive.cli import main

sys.exit(main())
