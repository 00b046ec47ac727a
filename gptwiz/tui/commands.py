"""The command palette's (^p) list of the current screen's actions: every key of the screen, found by its name.

Loaded when the palette first opens (gptwiz.tui.app names it lazily), so the first screen does not import it.
"""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from gptwiz.tui.screens.help import ScreenKey, screen_keys


class ScreenActions(Provider):
    """One command per key of the screen the palette was opened on (gptwiz.tui.screens.help.screen_keys)."""

    def _commands(self) -> list[ScreenKey]:
        return [k for k in screen_keys(self.screen) if k.action not in ("command_palette", "app.command_palette")]

    def _run(self, entry: ScreenKey) -> partial[object]:
        return partial(self.app.run_action, entry.action, entry.namespace)

    async def discover(self) -> Hits:
        for entry in self._commands():
            yield DiscoveryHit(entry.description, self._run(entry), help=f"key: {' '.join(entry.keys)}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for entry in self._commands():
            score = matcher.match(entry.description)
            if score > 0:
                yield Hit(score, matcher.highlight(entry.description), self._run(entry),
                          help=f"key: {' '.join(entry.keys)}")
