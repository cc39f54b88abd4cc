"""sidlive: a live instrument for the Commodore 64 SID chip."""
__version__ = "0.1.0"
