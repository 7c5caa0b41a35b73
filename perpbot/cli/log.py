"""`perpbot log verify|show|tail|key|head|prune`: the signed request log (docs/audit.md)."""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import typer

from perpbot.errors import BadInput, RuntimeFailure

log_app = typer.Typer(
    help="The signed request log: verify it, read it, follow it, anchor it, prune it.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    app.add_typer(log_app, name="log")


def _verifier(public_key: str | None) -> Any:
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.audit.keystore import KeyStore
    from perpbot.audit.signing import Verifier, parse_public_key

    if public_key is not None:
        return Verifier(parse_public_key(public_key)), None
    store = KeyStore()
    raw = store.public_raw(create=False)
    return (Verifier(raw) if raw is not None else None), store


def _target(path: Path | None, run: str | None) -> tuple[Path, list[str] | None, bool]:
    """(root to verify, runs to verify, whether it is this state dir's own logs)."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.audit.segments import check_run_id, file_number, is_segment
    from perpbot.paths import logs_dir

    logs = logs_dir()
    if path is not None and run is not None:
        raise BadInput("give either PATH or --run, not both")
    if run is not None:
        if not is_segment(logs / check_run_id(run)):
            raise BadInput(f"--run: got {run!r}, expected a run with an audit log under {logs}")
        return logs, [run], True
    if path is None:
        return logs, None, True
    p = path.expanduser()
    if not p.exists():
        raise BadInput(f"{p}: no such file or folder")
    if p.is_file():
        if file_number(p) is None:
            raise BadInput(
                f"{p}: expected an audit-NNNN.jsonl file, a run's folder or a logs folder"
            )
        p = p.parent
    own = p.resolve() == logs.resolve() or p.resolve().parent == logs.resolve()
    return p, None, own


@log_app.command("verify")
def verify(
    path: Path | None = typer.Argument(
        None, help="A logs folder, a run's folder or one audit file (default: every log here)."
    ),
    run: str | None = typer.Option(None, "--run", help="Verify this run's log."),
    public_key: str | None = typer.Option(
        None, "--public-key", help="Verify against this key (ed25519:<b64>, PEM, or a file)."
    ),
    head: str | None = typer.Option(
        None, "--head", help="The hash `perpbot log head` printed earlier: the log must hold it."
    ),
    accept_unanchored: bool = typer.Option(
        False,
        "--accept-unanchored",
        help="Exit 0 for an intact log whose head nothing outside the state dir anchors.",
    ),
    accept_gaps: bool = typer.Option(
        False,
        "--accept-gaps",
        help="Exit 0 for an intact log with gap records (requests sent on a full disk, "
        "recorded late from memory).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Check the chain, signatures and anchors: exit 0 when intact, else 1 saying why."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.audit.anchor import parse_head_hash
    from perpbot.audit.tree import UNANCHORED, verify_tree

    root, runs, own = _target(path, run)
    wanted_head = parse_head_hash(head) if head is not None else None
    if wanted_head is not None and runs is not None:
        raise BadInput("--head checks the whole log: give it without --run")
    verifier, store = _verifier(public_key)
    heads = store.read_heads() if (own and store is not None) else []
    if own and store is None:  # an auditor's key: still check the heads this machine keeps
        # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
        from perpbot.audit.keystore import KeyStore

        heads = KeyStore().read_heads()
    report = verify_tree(root, verifier=verifier, runs=runs, heads=heads, head=wanted_head)
    if json_output:
        print(json.dumps(report.to_dict(), sort_keys=True))
    else:
        _print_report(report, UNANCHORED)
    if report.empty:
        raise RuntimeFailure(
            f"no audit log records under {root}: an empty log never verifies as intact"
        )
    if report.damages:
        first = report.damages[0]
        more = f" (and {len(report.damages) - 1} more)" if len(report.damages) > 1 else ""
        raise RuntimeFailure(f"audit log damaged: {first.describe()}{more}")
    if report.unverified_orders:
        raise RuntimeFailure(
            f"audit log unverified: {report.unverified_orders} order-related record(s) no "
            "signed checkpoint ever covered (see the UNVERIFIED lines)"
        )
    if report.gaps and not accept_gaps:
        raise RuntimeFailure(
            f"audit log has gaps: {report.unrecorded_requests} request(s) went out while the "
            "log could not write; they are recorded late, from the bot's memory (see the GAP "
            "lines); accept that with --accept-gaps"
        )
    if report.anchor is None and not accept_unanchored:
        raise RuntimeFailure(
            "audit log not anchored: the chain is intact, but nothing outside this state "
            "dir confirms its head; compare with a head exported earlier (`perpbot log "
            "verify --head HASH`, export with `perpbot log head`), or accept that with "
            "--accept-unanchored"
        )


def _print_report(report: Any, unanchored: str) -> None:
    for d in report.damages:
        print(f"DAMAGED {d.describe()}")
    for u in report.unverified:
        for text in u.order_lines():
            print(f"UNVERIFIED {text}")
        print(f"unverified: {u.describe()}")
    for g in report.gaps:
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(g.get("since") or 0)))
        print(
            f"GAP {g['run']} seq {g.get('seq')}: {g.get('requests')} request(s) went out "
            f"unrecorded from {since} ({g.get('reason')}); their records (and "
            f"{g.get('other')} other) were written late, from the bot's memory, not as made"
        )
    for note in report.notes:
        print(f"note: {note}")
    for text in report.pruned:
        print(f"pruned: {text}")
    if report.empty:
        print("empty: 0 runs, no records: nothing to vouch for")
        return
    if report.anchor is not None:
        print(f"anchored: by {report.anchor}")
    elif report.whole or not report.damages:
        print(f"UNANCHORED: {unanchored}")
    if not report.damages:
        files = sum(len(s.files) for s in report.segments)
        print(
            f"intact: {len(report.segments)} run(s), {report.records} records in {files} "
            f"file(s), key {report.key or 'as named in each log'}"
            + (
                f"; but {report.unrecorded_requests} request(s) were recorded late, from "
                "memory (see GAP)"
                if report.gaps
                else ""
            )
        )


@log_app.command("show")
def show(
    run: str | None = typer.Option(None, "--run", help="The run to show (default: the latest)."),
    since: str | None = typer.Option(
        None, "--since", help="Only records from then on: 10m, 2h, 1d, an ISO time, epoch s."
    ),
    decisions: bool = typer.Option(False, "--decisions", help="Only guard decisions."),
    json_output: bool = typer.Option(False, "--json", help="One JSON record per line."),
) -> None:
    """Show a run's log as a table (or JSON lines)."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.audit import show as fmt
    from perpbot.audit.reader import find_segment, iter_records, matches, parse_since
    from perpbot.paths import logs_dir

    cutoff = parse_since(since) if since is not None else None
    segment = find_segment(logs_dir(), run)
    records = (r for r in iter_records(segment) if matches(r, cutoff, decisions))
    if json_output:
        for rec in records:
            print(fmt.json_line(rec))
        return
    if not sys.stdout.isatty():
        for rec in records:
            print(fmt.line(rec))
        return
    fmt.print_table(records, f"audit log of run {segment.name}")


@log_app.command("tail")
def tail(
    run: str | None = typer.Option(None, "--run", help="The run to follow (default: the latest)."),
    lines: int = typer.Option(
        10, "--lines", "-n", min=0, max=10_000_000, help="How many past records to show."
    ),
    follow_: bool = typer.Option(False, "--follow", "-f", help="Keep printing new records."),
    json_output: bool = typer.Option(False, "--json", help="One JSON record per line."),
) -> None:
    """The last records of a run's log; with -f, follow it until the run closes its log."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.audit import show as fmt
    from perpbot.audit.reader import find_segment, follow, iter_records
    from perpbot.paths import logs_dir

    segment = find_segment(logs_dir(), run)
    render = fmt.json_line if json_output else fmt.line
    if not follow_:
        for rec in deque(iter_records(segment), maxlen=lines):
            print(render(rec), flush=True)
        return
    total = sum(1 for _ in iter_records(segment))
    for rec in follow(segment, skip=max(total - lines, 0)):
        print(render(rec), flush=True)


@log_app.command("key")
def key(
    pem: bool = typer.Option(False, "--pem", help="Print the public key as PEM."),
    json_output: bool = typer.Option(False, "--json", help="Print key, fingerprint, store."),
) -> None:
    """Print the log's public key and fingerprint (for auditors); creates the key if none."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.audit.keystore import KeyStore
    from perpbot.audit.signing import fingerprint, public_pem, public_text

    store = KeyStore()
    raw = store.public_raw(create=True)
    assert raw is not None
    if json_output:
        doc = {
            "public_key": public_text(raw),
            "fingerprint": fingerprint(raw),
            "stored_in": "keyring" if store.in_keyring else "file",
            "where": store.where(),
        }
        print(json.dumps(doc, sort_keys=True))
    elif pem:
        print(public_pem(raw), end="")
    else:
        print(public_text(raw))
        print(f"fingerprint {fingerprint(raw)}")
        print(f"private key in {store.where()}")


@log_app.command("head")
def head(
    json_output: bool = typer.Option(False, "--json", help="Print the head as JSON."),
) -> None:
    """Print the chain head (hash, run, seq, signature) to keep somewhere else; later,
    `perpbot log verify --head HASH` proves the log was not cut back or rolled back."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.audit.anchor import head_lines
    from perpbot.audit.keystore import KeyStore
    from perpbot.audit.recovery import current_head
    from perpbot.audit.signing import Verifier

    store = KeyStore()
    raw = store.public_raw(create=False)
    cp = current_head(store, Verifier(raw)) if raw is not None else None
    if cp is None:
        raise RuntimeFailure(
            "no chain head yet: no run has written a signed checkpoint under this state dir"
        )
    if json_output:
        print(json.dumps(cp.to_dict(), sort_keys=True))
    else:
        print("\n".join(head_lines(cp.to_dict())))


@log_app.command("prune")
def prune(
    keep: str = typer.Option(
        ..., "--keep", help="What to keep: an age (90d, 12h) or a number of newest runs (30)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print what was pruned as JSON."),
) -> None:
    """Delete old runs' logs; a signed record of what was deleted keeps the chain verifiable."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.audit.housekeeping import prune_logs
    from perpbot.audit.retention import parse_keep

    age_s, runs = parse_keep(keep)
    result = prune_logs(age_s=age_s, keep_runs=runs)
    if json_output:
        print(json.dumps(result, sort_keys=True))
        return
    if result["pruned"]:
        names = ", ".join(p["run"] for p in result["pruned"])
        print(f"pruned {len(result['pruned'])} run(s): {names}")
        print(f"recorded, signed, in the open record of run {result['run']}")
    else:
        print(f"nothing to prune (keeping {keep})")
    print(f"compressed {result['compressed_files']} closed log file(s)")
