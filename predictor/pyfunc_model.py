"""MLflow models-from-code entry: logging this file avoids pickling the wrapper class."""

from headcast.predictor.pyfunc import HeadcastModel
from mlflow.models import set_model

set_model(HeadcastModel())
