"""sidlive.midi.inputs."""
