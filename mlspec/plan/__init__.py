"""Plan stage: desired graph vs recorded state → create / update / replace / delete / no-op, with reasons."""

from mlspec.plan.model import Action, Change, Drift, Plan, Record
from mlspec.plan.planner import VERBS, plan, spec_of

__all__ = ["VERBS", "Action", "Change", "Drift", "Plan", "Record", "plan", "spec_of"]
