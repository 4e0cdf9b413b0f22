"""The planner: fuses transform chains and works out output geometry and footprints."""

from .options import MODES, ResampleOptions
from .plan import Pass, Plan, plan

__all__ = ["MODES", "Pass", "Plan", "ResampleOptions", "plan"]
