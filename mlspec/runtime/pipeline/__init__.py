"""Pipelines: steps run in dependency order as MLflow child runs, each reused while its content is unchanged."""
