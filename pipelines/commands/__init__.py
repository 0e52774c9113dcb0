"""One module per ``unmixlab`` sub-command; each exposes a click command or group."""
