"""sidlive.export."""
