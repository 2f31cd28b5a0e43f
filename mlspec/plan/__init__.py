"""Plan stage: desired graph vs recorded state → create / update / replace / delete / no-op, with reasons."""

from mlspec.plan.compare import records_of
from mlspec.plan.model import Action, Blocker, Change, Drift, Plan, Record
from mlspec.plan.planner import VERBS, plan, spec_of
from mlspec.plan.registry import RegistryView, source_digest

__all__ = ["VERBS", "Action", "Blocker", "Change", "Drift", "Plan", "Record", "RegistryView", "plan",
           "records_of", "source_digest", "spec_of"]
