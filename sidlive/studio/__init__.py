"""The browser studio (`sidlive studio`): prompt the model with fragments of real tunes, steer it,
keep the takes in a library, export them, send them to a running `sidlive live`. See docs/studio.md."""
