"""Limits on what clients may send, shared by the routes that accept it."""

from __future__ import annotations

#: the longest prompt (and negative prompt) a node or a generate request may hold
MAX_PROMPT_CHARS = 4000
