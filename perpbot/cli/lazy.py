"""The root command group: a command's module is imported only when that command is asked for.

Typer turns every command's signature into click parameters when it builds a group, and
each command module imports what its commands need; for `perpbot --help` that was more
than a third of its start-up. Here the root group lists the commands from a table (name ->
module and the one line `perpbot --help` shows, in perpbot/cli/app.py), so `perpbot
--help` imports no command module. `perpbot kill ...` (or `perpbot kill --help`) imports
perpbot/cli/kill.py alone, which registers its commands on a Typer of its own, and takes
the converted command from there: the click command the whole app would have built.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, NamedTuple

import typer
from typer.core import TyperGroup

try:  # typer >= 0.20 vendors click
    from typer._click.core import Command, Context, HelpFormatter
    from typer._click.utils import make_default_short_help
except ImportError:  # pragma: no cover
    from click.core import Command, Context, HelpFormatter
    from click.utils import make_default_short_help


class Entry(NamedTuple):
    module: str  # has ``register(app: typer.Typer)``, which adds this command
    summary: str  # the first paragraph of the command's help (tests keep them equal)


class LazyCommands(Mapping[str, Command]):
    """name -> click command, the module imported and converted on the first lookup."""

    def __init__(self, entries: Mapping[str, Entry], settings: Mapping[str, Any]) -> None:
        self._entries = entries
        self._settings = settings
        self._loaded: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        if name not in self._loaded:
            module = importlib.import_module(self._entries[name].module)
            own = typer.Typer(**self._settings)
            module.register(own)
            self._loaded.update(typer.main.get_group(own).commands)
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


class LazyGroup(TyperGroup):
    """A TyperGroup over ``entries``; a subclass names them (Typer builds it from ``cls``)."""

    entries: ClassVar[Mapping[str, Entry]] = {}
    settings: ClassVar[Mapping[str, Any]] = {}  # the Typer settings each module registers on

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(self.entries, self.settings)  # type: ignore[assignment]

    def list_commands(self, ctx: Context) -> list[str]:
        return list(self.entries)

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        """TyperGroup.format_commands from the summaries, without loading a command."""
        if not self.entries:
            return
        limit = formatter.width - 6 - max(len(name) for name in self.entries)
        rows = [
            (name, make_default_short_help(entry.summary, limit).strip())
            for name, entry in self.entries.items()
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
