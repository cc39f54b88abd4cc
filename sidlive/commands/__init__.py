"""sidlive.commands."""
