"""What the state machine reads first for a return its cache missed (`MissMix`): the document
once enough misses were stored returns, the history while they are mostly new ones."""

from __future__ import annotations

from state_machine.repository import MissMix


def test_a_fresh_state_machine_reads_the_document_first_as_after_a_restart() -> None:
    assert MissMix().return_first()


def test_batches_of_new_returns_turn_it_to_the_history_first_and_stored_ones_back() -> None:
    mix = MissMix()
    batches = 0
    while mix.return_first():
        mix.observe(stored=0, missed=100)
        batches += 1
    assert batches == 4  # 0.5 -> 0.4 -> 0.32 -> 0.256 -> 0.2048
    mix.observe(stored=100, missed=100)
    assert mix.return_first()


def test_a_batch_without_misses_changes_nothing() -> None:
    mix = MissMix()
    mix.observe(stored=0, missed=0)
    assert mix.share == 0.5
