"""MUSDB18 data: track discovery and checks, the decoded cache, training and validation sets."""
