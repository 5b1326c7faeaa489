"""What the state machine reads first for a return its cache missed (`MissMix`): the document
once enough misses were stored returns, the history while they are mostly new ones."""

from __future__ import annotations

from state_machine.repository import MissMix


def test_a_fresh_state_machine_reads_the_document_first_as_after_a_restart() -> None:
    assert MissMix().return_first()


def test_one_batch_of_new_returns_turns_a_fresh_one_to_the_history_first() -> None:
    mix = MissMix()
    mix.observe(stored=0, missed=100)  # a fresh stream, or a replay
    assert not mix.return_first()


def test_stored_returns_turn_it_back_and_keep_it_on_the_document_first() -> None:
    mix = MissMix()
    for _ in range(5):
        mix.observe(stored=0, missed=100)
    mix.observe(stored=100, missed=100)
    assert mix.return_first()
    mix.observe(stored=30, missed=100)  # still above a quarter
    assert mix.return_first()


def test_a_batch_without_misses_changes_nothing() -> None:
    mix = MissMix()
    share = mix.share
    mix.observe(stored=0, missed=0)
    assert mix.share == share
