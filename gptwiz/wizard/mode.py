"""Which face `gptwiz` shows: the full-screen app, the plain prompts, or a one-line hint (no Textual here)."""

from __future__ import annotations

from collections.abc import Mapping


def choose_mode(env: Mapping[str, str], stdin_tty: bool, stdout_tty: bool, plain_flag: bool = False) -> str:
    """'app', 'plain' or 'hint'.

    Prompts and the app both need a terminal on both ends; with none there is nobody to ask, so a hint.
    A dumb terminal cannot draw the app, but it can answer questions one line at a time.
    """
    if not (stdin_tty and stdout_tty):
        return "hint"
    if plain_flag or env.get("TERM", "") in ("dumb", "") or env.get("GPTWIZ_PLAIN"):
        return "plain"
    return "app"


NO_TTY_HINT = ("gptwiz: no terminal to run the wizard in; use the commands instead "
               "(gptwiz --help: train, runs, watch, stop, ...)")
