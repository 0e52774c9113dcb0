"""MLflow tracking: run logging, the served pyfunc model, and promotion in the Model Registry.

Submodules are imported on use (``from unmixlab.tracking.runs import train_tracked``) so that
importing the package costs nothing.
"""
