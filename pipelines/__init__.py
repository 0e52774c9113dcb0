"""Prefect flows, presets and the ``unmixlab`` command line."""
