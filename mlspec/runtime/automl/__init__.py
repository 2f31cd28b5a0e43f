"""AutoML jobs: FLAML searches run as processes, their candidates tracked as MLflow child runs."""
