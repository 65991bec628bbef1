"""What bounds the server: admission of concurrent requests (beyond the limit → 429) and the LRU cache
of finished audio."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np


class Admission:
    """At most ``limit`` requests admitted (running or waiting for a worker); :meth:`try_enter` says no
    instead of queueing without bound, so a burst gets 429 + Retry-After rather than ever-growing latency."""

    def __init__(self, limit: int):
        self.limit = limit
        self.active = 0
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        with self._lock:
            if self.active >= self.limit:
                return False
            self.active += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.active -= 1


class AudioCache:
    """Finished audio keyed by everything that determines it (text, voice, every parameter, seed), bounded by
    bytes, least recently used out first. Only seeded requests are deterministic, so only they are cached."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = self.misses = 0
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            audio = self._items.get(key)
            if audio is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return audio

    def put(self, key: Hashable, audio: np.ndarray) -> None:
        if audio.nbytes > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                self.bytes -= self._items.pop(key).nbytes
            self._items[key] = audio
            self.bytes += audio.nbytes
            while self.bytes > self.max_bytes:
                self.bytes -= self._items.popitem(last=False)[1].nbytes
