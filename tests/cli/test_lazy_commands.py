"""The root group lists commands from perpbot/cli/app.py's table and imports a command's
module only when that command is asked for; what it shows is what Typer would show."""

from __future__ import annotations

import importlib
import subprocess
import sys

import typer
from typer.core import TyperGroup

from perpbot.cli.app import COMMANDS, SETTINGS, app
from tests.architecture.graph import cycles, graph
from tests.conftest import ROOT

COMMAND_MODULES = sorted({entry.module for entry in COMMANDS.values()})


def _help_text(group: TyperGroup, formatter_width: int = 80) -> str:
    ctx = typer.Context(group, info_name="perpbot")
    formatter = ctx.make_formatter()
    formatter.width = formatter_width
    group.format_help(ctx, formatter)
    return formatter.getvalue()


def test_every_module_registers_exactly_the_commands_the_table_names() -> None:
    registered: dict[str, str] = {}
    for module in COMMAND_MODULES:
        own = typer.Typer(**SETTINGS)
        importlib.import_module(module).register(own)
        for name in typer.main.get_group(own).commands:
            assert name not in registered, f"{name} registered by {module} and {registered[name]}"
            registered[name] = module
    assert registered == {name: entry.module for name, entry in COMMANDS.items()}


def test_the_table_closes_no_import_cycle() -> None:
    """The table names modules as strings (imported by importlib): the import graph of
    tests/architecture does not see those edges, so they are added here."""
    edges = graph()
    assert not set(COMMAND_MODULES) & edges["perpbot.cli.app"]  # no static import of them
    edges["perpbot.cli.app"] |= set(COMMAND_MODULES)
    assert cycles(edges) == []


def test_the_listing_is_the_one_typer_draws_from_the_loaded_commands() -> None:
    """Each summary is the first paragraph of the command's own help; the listing from the
    table equals TyperGroup's own listing once every command is loaded."""
    for width in (60, 80, 120):
        group = typer.main.get_command(app)
        assert isinstance(group, TyperGroup)
        lazy = _help_text(group, width)
        for name, entry in COMMANDS.items():
            command = group.get_command(typer.Context(group), name)
            assert command is not None
            assert not command.short_help, name  # the summary comes from the help
            assert (command.help or "").split("\n\n")[0] == entry.summary, name
        ctx = typer.Context(group, info_name="perpbot")
        formatter = ctx.make_formatter()
        formatter.width = width
        TyperGroup.format_commands(group, ctx, formatter)  # loads and asks every command
        assert formatter.getvalue() in lazy
        assert "Commands:" in lazy and all(f"  {name} " in lazy for name in COMMANDS)


PROBE = """
import sys
from perpbot.cli.entry import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
cli = sorted(m for m in sys.modules if m.startswith("perpbot.cli.") and m not in (
    "perpbot.cli.entry", "perpbot.cli.app", "perpbot.cli.errors", "perpbot.cli.lazy"))
heavy = sorted(m for m in ("asyncio", "ccxt", "pydantic", "rich", "aiohttp") if m in sys.modules)
print("LOADED", code, cli, heavy)
"""


def _loaded(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=60,
    )
    line = [x for x in out.stdout.splitlines() if x.startswith("LOADED")]
    assert line, out.stdout + out.stderr
    return line[0]


def test_help_imports_no_command_module_and_nothing_heavy() -> None:
    assert _loaded("--help") == "LOADED 0 [] []"
    assert _loaded() == "LOADED 2 [] []"  # no arguments: the help, as a usage error


def test_a_command_imports_its_own_module_only() -> None:
    assert _loaded("keys", "--help").startswith("LOADED 0 ['perpbot.cli.keys'] ")
    assert _loaded("sim", "serve", "--help").startswith("LOADED 0 ['perpbot.cli.sim'] ")
    # `runs` and `report` live in one module, which imports its prune helper
    assert _loaded("report", "--help").startswith(
        "LOADED 0 ['perpbot.cli.runs', 'perpbot.cli.runs_prune'] "
    )


def test_a_typo_is_still_answered_with_the_close_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "perpbot", "statsu"],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=60,
    )
    assert out.returncode == 2
    assert "No such command 'statsu'. Did you mean 'status'?" in out.stderr
    assert "Traceback" not in out.stderr
