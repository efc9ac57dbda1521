"""MLflow models-from-code entry: logging this file avoids pickling the wrapper class."""

from mlflow.models import set_model

from headcast.predictor.pyfunc import HeadcastModel

set_model(HeadcastModel())
