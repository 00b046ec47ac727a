"""`gptwiz wizard --plain`: the wizard's questions as plain prompts, for terminals where a full-screen app is
unwelcome (and TERM=dumb): `wizard` asks them in the flow's order, `prompts` asks one question."""

from gptwiz.plain.prompts import BACK, Cancelled, LinePrompter, Prompter, QuestionaryPrompter
from gptwiz.plain.wizard import PlainWizard, run_plain_wizard

__all__ = ["BACK", "Cancelled", "LinePrompter", "Prompter", "QuestionaryPrompter", "PlainWizard", "run_plain_wizard"]
