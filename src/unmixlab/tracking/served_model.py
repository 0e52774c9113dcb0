"""Model code of the logged pyfunc model (MLflow "models from code"); not imported by unmixlab.

MLflow copies this file into the model and runs it when loading, so the served model is built
from code, never unpickled.
"""

import mlflow

from unmixlab.tracking.pyfunc import SeparatorModel

mlflow.models.set_model(SeparatorModel())
