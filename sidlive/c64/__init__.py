"""sidlive.c64."""
