"""`perpbot runs prune --keep 90d`: retention of the runs dir (perpbot.ops.prune)."""

from __future__ import annotations

import json

import typer


def prune(
    keep: str = typer.Option(..., "--keep", help="Keep runs that ended within this (90d, 12h)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would go; change nothing."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Remove runs that ended longer ago than --keep; gzip the journals of runs kept."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.ops.prune import parse_duration, prune_runs

    result = prune_runs(parse_duration(keep), dry_run=dry_run)
    if json_output:
        print(json.dumps({"dry_run": dry_run, **_as_dict(result)}, sort_keys=True))
        return
    verb = "would remove" if dry_run else "removed"
    print(
        f"{verb} {len(result.removed)} run(s), compressed {len(result.compressed)}, kept "
        f"{result.kept}; {result.bytes_freed / 1e6:.1f} MB freed"
    )
    for run_id in result.removed:
        print(f"  {run_id}")


def _as_dict(result: object) -> dict[str, object]:
    return {k: getattr(result, k) for k in ("removed", "compressed", "kept", "bytes_freed")}
