"""The known-key sets: never miss a key, stay near their false positive rate as they grow,
read back the same, and put a key in the shard of its events' partition."""

from __future__ import annotations

import bson
from aiokafka.partitioner import DefaultPartitioner

from contracts.messages import return_key
from contracts.read_model import KEY_SHARDS
from contracts.topics import EVENTS_TOPIC, TOPICS
from state_machine.keyset import FIRST_CAPACITY, KeySet, shard_of


def _keys(prefix: str, n: int) -> list[str]:
    return [return_key("shop", f"{prefix}{i}") for i in range(n)]


def test_a_key_set_holds_every_key_added_as_it_grows_layer_by_layer() -> None:
    added = _keys("r", 5 * FIRST_CAPACITY)
    keys = KeySet()
    for start in range(0, len(added), 300):  # a batch's worth at a time
        keys = keys.with_keys(added[start:start + 300])
    assert all(key in keys for key in added)
    assert len(keys.layers) == 3  # 1,024 + 2,048 + 4,096 >= 5,120
    others = _keys("other", 20_000)
    assert sum(key in keys for key in others) / len(others) < 0.03  # 1 % a layer


def test_adding_keys_leaves_the_set_added_to_as_it_was() -> None:
    before = KeySet().with_keys(["shop:r1"])
    after = before.with_keys(["shop:r2"])
    assert "shop:r2" in after
    assert "shop:r2" not in before
    assert before.with_keys(["shop:r1"]) is before  # nothing new: the same set


def test_a_key_set_reads_back_the_same_from_its_stored_document() -> None:
    keys = KeySet().with_keys(_keys("r", FIRST_CAPACITY + 10))
    stored = bson.decode(bson.encode({"layers": keys.to_document()}))
    again = KeySet.from_document(stored["layers"])
    assert [layer.bloom.save_bytes() for layer in again.layers] == [
        layer.bloom.save_bytes() for layer in keys.layers]
    assert all(key in again for key in _keys("r", FIRST_CAPACITY + 10))


def test_a_returns_key_shard_is_the_partition_its_events_are_published_to() -> None:
    (events,) = [topic for topic in TOPICS if topic.name == EVENTS_TOPIC]
    assert events.partitions == KEY_SHARDS
    partitions = list(range(events.partitions))
    partitioner = DefaultPartitioner()
    for key in _keys("r", 500):
        assert shard_of(key) == partitioner(key.encode(), partitions, partitions)
