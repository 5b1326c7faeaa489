"""Which returns a read model may hold: a set of return keys that answers "certainly not" or
"maybe", so that a return the state machine has never written is known to be new without a
read (see state_machine.known_keys for how it is kept right).

Layers of Bloom filters (rbloom), each of twice the capacity of the one before: a key is added
to the last one, a full one is followed by a new one, and a key is held when any layer holds
it. So the set keeps about its false positive rate however large a shop grows, and a small
shop's stays small. A false positive costs a read; a key is never missed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.partitioner import murmur2
from rbloom import Bloom

from contracts.read_model import KEY_SHARDS

FIRST_CAPACITY = 1_024
FALSE_POSITIVE_RATE = 0.01  # per layer


def shard_of(key: str) -> int:
    """The shard of a shop's key set that holds this return key: the partition Kafka's default
    partitioner gives its events on a topic of `KEY_SHARDS` partitions, so that each consumer
    writes the shards of its own partitions. Only `KEY_SHARDS` decides it, never the topic."""
    return (int(murmur2(key.encode("utf-8"))) & 0x7FFFFFFF) % KEY_SHARDS


def _hash(key: Any) -> int:
    """The same for a key in every process (Python's own `hash` of a str is not)."""
    digest = hashlib.blake2b(str(key).encode("utf-8"), digest_size=16).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class Layer:
    bloom: Bloom
    capacity: int
    items: int


class KeySet:
    """Immutable: `with_keys` gives a new set, so a copy kept in a cache changes only once
    its write is stored."""

    def __init__(self, layers: tuple[Layer, ...] = ()) -> None:
        self.layers = layers

    def __contains__(self, key: str) -> bool:
        return any(key in layer.bloom for layer in self.layers)

    def with_keys(self, keys: Iterable[str]) -> KeySet:
        """This set and `keys`; itself when it holds them all already."""
        new = [key for key in dict.fromkeys(keys) if key not in self]
        if not new:
            return self
        layers = list(self.layers)
        last = layers.pop() if layers else None
        bloom = last.bloom.copy() if last else None
        capacity, items = (last.capacity, last.items) if last else (0, 0)
        for key in new:
            if bloom is None or items >= capacity:
                if bloom is not None:
                    layers.append(Layer(bloom, capacity, items))
                capacity = capacity * 2 if capacity else FIRST_CAPACITY
                bloom, items = Bloom(capacity, FALSE_POSITIVE_RATE, _hash), 0
            bloom.add(key)
            items += 1
        assert bloom is not None
        layers.append(Layer(bloom, capacity, items))
        return KeySet(tuple(layers))

    def to_document(self) -> list[dict[str, Any]]:
        return [{"bits": layer.bloom.save_bytes(), "capacity": layer.capacity,
                 "items": layer.items} for layer in self.layers]

    @classmethod
    def from_document(cls, layers: list[dict[str, Any]]) -> KeySet:
        return cls(tuple(Layer(Bloom.load_bytes(bytes(layer["bits"]), _hash),
                               int(layer["capacity"]), int(layer["items"]))
                         for layer in layers))
