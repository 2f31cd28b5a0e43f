"""mlspec: declare ML workspaces, compute, jobs, models and endpoints as code.

MLflow's usage telemetry is off in every process that imports mlspec, and in what it starts, unless the environment
says otherwise: MLflow's telemetry thread removes a variable from os.environ when it cannot reach its service (always,
from an internal network), and a client call copying os.environ at that moment (requests does, for proxies) fails
with a KeyError naming that variable.
"""

import os

__version__ = "0.1.0"

TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true"}
for _name, _value in TELEMETRY_OFF.items():
    os.environ.setdefault(_name, _value)
