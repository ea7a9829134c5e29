"""The rules the Judge runs, each registered once, with its family, in the order they run.

    register(StallRule, STOPPAGE)

is all a new rule needs beyond its module: the Judge runs it on every series (unless
`[detection] disable` names it), `disable` accepts its name, and each event it makes carries
its family (`details.family`, by monitor.model.RULE_FAMILIES, which this fills), so alerting
and the timeline group it without a table of their own. docs/architecture.md, "Where to add
things"; tests/test_architecture.py registers a rule of its own to keep it so.
"""
from __future__ import annotations

from ..model import RULE_FAMILIES, STOPPAGE
from .base import Rule
from .consistency import CorrectionRule, InconsistentRule, OverCapacityRule, RegressionRule
from .divergence import DivergenceRule
from .jump import JumpRule
from .lagging import LaggingRule
from .outage import LatencyRule, OutageRule
from .phase import NotStartedRule
from .region_stall import RegionStallRule
from .stall import StaleSourceRule, StallRule

RULE_CLASSES: list[type[Rule]] = []     # the Judge's running order; filled by register()


def register(rule: type[Rule], family: str) -> type[Rule]:
    """Run `rule` after those registered before it; its events are of `family`."""
    if not rule.name or not family:
        raise ValueError(f"{rule.__name__} needs a name and a family to be registered")
    if rule.name in RULE_FAMILIES:
        raise ValueError(f"a rule named {rule.name!r} is registered already")
    RULE_CLASSES.append(rule)
    RULE_FAMILIES[rule.name] = family
    return rule


def unregister(rule: type[Rule]) -> None:
    """Undo register() (a test's own rule, when the test ends)."""
    RULE_CLASSES.remove(rule)
    del RULE_FAMILIES[rule.name]


register(StallRule, STOPPAGE)
register(StaleSourceRule, STOPPAGE)
register(OutageRule, "outage")
register(LatencyRule, "latency")
register(JumpRule, "jump")
register(RegressionRule, "consistency")
register(CorrectionRule, "consistency")
register(OverCapacityRule, "consistency")
register(InconsistentRule, "consistency")
register(RegionStallRule, STOPPAGE)
register(DivergenceRule, "divergence")
register(LaggingRule, STOPPAGE)
register(NotStartedRule, STOPPAGE)

__all__ = ["RULE_CLASSES", "register", "unregister"]
