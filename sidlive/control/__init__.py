"""sidlive.control."""
