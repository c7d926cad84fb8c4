"""The offset ledger: only saved offsets are committed, and no mark moves backwards."""

from __future__ import annotations

from monitor.state.ledger import OffsetLedger

A, B = ("events", 0), ("events", 1)


def test_only_saved_offsets_may_be_committed() -> None:
    """Processed offsets wait for a save; a commit clears what it committed."""
    ledger = OffsetLedger()
    ledger.processed({A: 10, B: 5})
    assert ledger.unsaved() and ledger.committable() == {}
    ledger.saved(ledger.to_save())
    assert not ledger.unsaved()
    assert ledger.committable() == {A: 10, B: 5}
    assert ledger.committable([B]) == {B: 5}
    ledger.committed({B: 5})
    assert ledger.committable() == {A: 10}


def test_a_stale_offset_never_moves_a_mark_back() -> None:
    """An older offset for an owned partition is ignored (it would re-count events)."""
    ledger = OffsetLedger()
    ledger.processed({A: 10})
    ledger.processed({A: 7})
    assert ledger.to_save() == {A: 10}
    ledger.saved({A: 10})
    ledger.saved({A: 8})
    assert ledger.committable() == {A: 10}


def test_a_restart_resumes_at_the_checkpoint_and_needs_no_save() -> None:
    """Restored offsets count as processed and saved: nothing is unsaved after a restart."""
    ledger = OffsetLedger()
    ledger.restored({A: 42})
    assert not ledger.unsaved()
    assert ledger.assigned([A, B], {}) == {A: 42}


def test_a_revoked_partition_is_forgotten_and_resumes_where_its_slice_says() -> None:
    """After a revoke the next assignment takes the checkpoint's offset, even a lower one."""
    ledger = OffsetLedger()
    ledger.processed({A: 100, B: 50})
    ledger.revoked([A])
    assert ledger.to_save() == {B: 50}
    assert ledger.assigned([A], {A: 80}) == {A: 80}
    assert ledger.to_save() == {A: 80, B: 50}


def test_an_assignment_never_seeks_an_owned_partition_back() -> None:
    """A partition still owned keeps its progress; its older checkpoint offset is not sought."""
    ledger = OffsetLedger()
    ledger.processed({A: 100})
    assert ledger.assigned([A], {A: 80}) == {}
    assert ledger.to_save() == {A: 100}
