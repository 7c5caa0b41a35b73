"""The simulator's settings models refuse a key they do not know (a typo is named, never
silently ignored), like perpbot's own config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
