"""Training side of sidlive: tune dumper (6510 emulator, PSID loader), datasets, model, training, export."""
