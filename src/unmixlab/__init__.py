"""unmixlab: run, track and compare Open-Unmix music source separation experiments."""

__version__ = "0.1.0"
