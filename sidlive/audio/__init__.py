"""sidlive.audio."""
