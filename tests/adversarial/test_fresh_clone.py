"""The README's test command must pass on a fresh clone alone: no test reads a file outside
the repository (fixtures live in tests/fixtures/, with their provenance)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# parents[N] of a file N directories deep under the root is the root; a larger N leaves
# the repository.
PARENTS = re.compile(r"__file__\)\.resolve\(\)\.parents\[(\d+)\]")


def test_no_test_reaches_outside_the_repository() -> None:
    escaping = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        text = path.read_text()
        depth = len(path.relative_to(ROOT).parts) - 1  # directories between root and file
        for m in PARENTS.finditer(text):
            if int(m.group(1)) > depth:
                escaping.append(f"{path.relative_to(ROOT)}: parents[{m.group(1)}]")
        if "shared/reference" in text and path.name != Path(__file__).name:
            escaping.append(f"{path.relative_to(ROOT)}: shared/reference")
    assert escaping == []


def test_the_fixtures_name_their_provenance() -> None:
    fixtures = ROOT / "tests" / "fixtures"
    readme = (fixtures / "README.md").read_text()
    for f in fixtures.iterdir():
        if f.name != "README.md":
            assert f"`{f.name}`" in readme, f"{f.name}: no provenance in the README"
