"""Prefect tasks, one per pipeline step, wrapping plain ``unmixlab`` functions."""
