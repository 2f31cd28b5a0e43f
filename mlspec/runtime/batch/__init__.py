"""The batch scorer: streams a file or folder in mini-batches through a verified model into CSV predictions.

`python -m mlspec.runtime.batch BATCHRUN.json [--result RESULT.json]`; see `contract.BatchRun` for what it takes.
"""
