"""Sweeps on this machine: Optuna asks for parameters, each trial is a training run, poor trials stop early."""
