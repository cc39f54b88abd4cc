"""sidlive.measure."""
