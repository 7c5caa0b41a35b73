"""What "self-contained" means for a report page, checked on its parsed tags."""

from __future__ import annotations

from html.parser import HTMLParser

FORBIDDEN_TAGS = {"script", "link", "iframe", "object", "embed", "base", "frame"}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data


def external_references(page: str) -> list[str]:
    """Every reference the page makes outside itself (empty when self-contained)."""
    parser = _Tags()
    parser.feed(page)
    found = [f"<{t}>" for t, _ in parser.tags if t in FORBIDDEN_TAGS]
    for tag, attrs in parser.tags:
        for name in ("src", "href", "srcset", "data", "poster", "background"):
            value = (attrs.get(name) or "").strip()
            if value and not value.startswith("data:"):
                found.append(f"<{tag} {name}={value[:60]}>")
        if "url(" in (attrs.get("style") or ""):
            found.append(f"<{tag} style=url(...)>")
    if "url(" in parser.style or "@import" in parser.style:
        found.append("<style> with url()/@import")
    return found


def embedded_images(page: str) -> list[str]:
    parser = _Tags()
    parser.feed(page)
    return [a.get("src") or "" for t, a in parser.tags if t == "img"]
