"""Ordering: one project's events put back in seq order, whatever order Redis brought them in.

Changes are published after commit, so two concurrent changes can reach Redis
out of order, and a publish can be lost. Every seq'd change is also in the
Postgres log, so the sequencer drops duplicates, holds early events and names
the gap the caller should fill from the log. Plain code: no I/O.
"""

from __future__ import annotations

from common.protocol.events import AnyEvent


class Sequencer:
    """Puts one project's events in seq order: drops duplicates, holds early ones, names gaps.

    Until `start` gives it a baseline seq it only holds what it is pushed.
    Afterwards `push` returns the events that are now deliverable, consecutive
    from `last_seq + 1`; `missing` names the range a caller should read from
    the log when an early event is held.
    """

    def __init__(self, max_held: int = 10_000) -> None:
        self.last_seq: int | None = None
        self.held: dict[int, AnyEvent] = {}
        self.max_held = max_held

    def start(self, seq: int) -> list[AnyEvent]:
        """Set the baseline: everything up to `seq` is accounted for elsewhere."""
        if self.last_seq is None or seq > self.last_seq:
            self.last_seq = seq
        return self._release()

    def push(self, event: AnyEvent) -> list[AnyEvent]:
        """Take one event; returns the events now deliverable, in seq order."""
        if self.last_seq is not None and event.seq <= self.last_seq:
            return []  # a duplicate: Redis and the log (or two fills) both brought it
        if event.seq not in self.held:
            next_up = self.last_seq is not None and event.seq == self.last_seq + 1
            if len(self.held) >= self.max_held and not next_up:
                return []  # it is in the log; the gap fill will bring it back
            self.held[event.seq] = event
        return self._release()

    def missing(self) -> tuple[int, int] | None:
        """`(after, until)`: the seqs after `after` up to `until` are needed, or None."""
        if self.last_seq is None or not self.held:
            return None
        return self.last_seq, min(self.held) - 1

    def skip_to(self, seq: int) -> list[AnyEvent]:
        """Give up on everything up to `seq` (it is nowhere to be had) and release what follows."""
        if self.last_seq is None or seq > self.last_seq:
            self.last_seq = seq
        for stale in [s for s in self.held if s <= seq]:
            del self.held[stale]
        return self._release()

    def drain(self) -> list[AnyEvent]:
        """Every held event in seq order, gaps and all (the project is gone)."""
        out = [self.held[s] for s in sorted(self.held)]
        self.held.clear()
        if out:
            self.last_seq = out[-1].seq
        return out

    def _release(self) -> list[AnyEvent]:
        out: list[AnyEvent] = []
        if self.last_seq is None:
            return out
        for stale in [s for s in self.held if s <= self.last_seq]:
            del self.held[stale]
        while self.last_seq + 1 in self.held:
            self.last_seq += 1
            out.append(self.held.pop(self.last_seq))
        return out
