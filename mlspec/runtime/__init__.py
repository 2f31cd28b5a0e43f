"""What runs inside a job's process or container: the training runner (jobrun, execute, tracking, packaging, train).

Nothing here imports MLflow at import time: the CLI and the job runner must start fast.
"""
