"""The embedded local engine: runs a spec as processes on this machine."""
