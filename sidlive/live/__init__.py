"""sidlive.commands.live."""
