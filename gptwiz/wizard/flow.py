"""The wizard's steps: their order, where each move leads given the answers so far, and what going back means.

Pure, so both front-ends follow the same path: the app maps each step to its screen and pushes it, the
plain prompts call the step's questions; neither decides on its own which step comes next.
"""

from __future__ import annotations

from collections.abc import Sequence

from gptwiz.common.errors import UsageError
from gptwiz.wizard.state import WizardState

STEPS = ("welcome", "use_case", "hardware", "dataset", "recommendation", "probe", "launch")
TITLES = {"welcome": "Welcome", "use_case": "Use case", "hardware": "Hardware", "dataset": "Dataset",
          "recommendation": "Recommendation", "probe": "Probe", "launch": "Launch"}

# step -> move -> the step it leads to. "next" is the way on; from the recommendation "launch" skips the probe.
MOVES: dict[str, dict[str, str]] = {
    "welcome": {"next": "use_case"},
    "use_case": {"next": "hardware"},
    "hardware": {"next": "dataset"},
    "dataset": {"next": "recommendation"},
    "recommendation": {"next": "probe", "launch": "launch"},
    "probe": {"next": "launch"},
    "launch": {},
}


class FlowError(UsageError):
    """A move the wizard cannot make: the message says what is missing."""


def step_number(step: str) -> int:
    """1 for the welcome step, len(STEPS) for the launch."""
    return STEPS.index(step) + 1


def missing_for(step: str, state: WizardState) -> str | None:
    """What `state` still lacks for `step` to be shown, or None when nothing does."""
    if step in ("hardware", "dataset") and state.use_case is None:
        return "choose a use case first"
    if step == "recommendation":
        if state.dataset is None:
            return "no dataset chosen yet"
        if state.dataset.needs_prepare:
            return f"{state.dataset.path} is not prepared yet"
    if step in ("probe", "launch") and state.knobs is None:
        return "no recommendation yet"
    return None


def next_step(step: str, state: WizardState, move: str = "next") -> str:
    """The step `move` leads to from `step`; FlowError if there is no such move or the answers do not allow it."""
    target = MOVES.get(step, {}).get(move)
    if target is None:
        raise FlowError(f"no way to {move} from the {TITLES.get(step, step)} step")
    problem = missing_for(target, state)
    if problem is not None:
        raise FlowError(problem)
    return target


def back_step(visited: Sequence[str]) -> str | None:
    """The step that going back from the last of `visited` returns to: the one shown before it, whose answers
    are kept. None on the first step shown, where there is nothing to go back to."""
    return visited[-2] if len(visited) > 1 else None
