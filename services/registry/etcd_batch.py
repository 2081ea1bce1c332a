"""Group commit: etcd transactions that arrive while one is in flight go together in the next one.

A node beat on the etcd store is one transaction (compare each renewed record's revision, put the
beat key). Each costs the registry one HTTP round trip to etcd's JSON gateway and etcd ~1 ms of
CPU, and when etcd slows down (a busy machine), beats pile up behind each other's round trips.
Here the first caller sends its transaction at once; callers that arrive meanwhile queue up, and
when it returns the first of them sends every queued one as **one** transaction (their compares
and their operations side by side, at most ``max_ops`` of each: etcd's ``--max-txn-ops``, 128 by
default, and no key written twice). So at low load nothing waits, and under a burst the number of
round trips falls with the queue.

Every caller still gets its own answer:

* the combined transaction succeeded: every part of it landed, at the same revision;
* a compare failed, or etcd refused it (one part's lease ran out, say): nothing of it landed,
  and each caller is told to send its own transaction alone, which gives its own answer;
* etcd could not be reached: every caller gets that error, as it would have alone.

Callers run in the registry's greenlets (gevent's patched ``threading``) or plain threads in tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from etcd3gw.exceptions import Etcd3Exception

MAX_TXN_OPS = 128  # etcd's --max-txn-ops default: compares and operations are each capped at this

Txn = Callable[[list[dict[str, Any]], list[dict[str, Any]]], tuple[bool, int]]


@dataclass
class _Part:
    """One caller's transaction, waiting for its turn."""

    compare: list[dict[str, Any]]
    success: list[dict[str, Any]]
    keys: set[str]
    woken: threading.Event = field(default_factory=threading.Event)
    finished: bool = False
    answer: tuple[bool, int] | None = None
    error: BaseException | None = None


class GroupCommit:
    """Send transactions through ``txn``, combining the ones that queue up behind a transaction in flight.

    :param txn: the store's transaction call, ``(compare, success) -> (succeeded, revision)``.
    :param max_ops: the most compares, and the most operations, one combined transaction may hold.
    """

    def __init__(self, txn: Txn, max_ops: int = MAX_TXN_OPS) -> None:
        self.txn = txn
        self.max_ops = max_ops
        self.transactions = 0  # sent to etcd, combined or not (tests and diagnostics read these)
        self.combined = 0  # of them, with more than one caller's transaction
        self._lock = threading.Lock()
        self._queue: list[_Part] = []
        self._busy = False  # a caller is sending a batch; the queue waits for it

    def submit(self, compare: list[dict[str, Any]], success: list[dict[str, Any]]) -> tuple[bool, int] | None:
        """(succeeded, revision) as ``txn`` answers it; None when the combined transaction it went in
        did not land (a compare or a refusal, maybe another caller's): send it alone to learn why.
        Raises what ``txn`` raised when etcd could not be reached."""
        part = _Part(compare, success, {_key_of(op) for op in success})
        with self._lock:
            self._queue.append(part)
            lead = not self._busy
            self._busy = True
        if not lead:
            part.woken.wait()  # finished by another caller's batch, or made the next one to send
        if not part.finished:
            self._send_next()
        if part.error is not None:
            raise part.error
        return part.answer

    def _send_next(self) -> None:
        """Send the batch at the head of the queue (ours), then hand the turn to the next in line."""
        with self._lock:
            batch = self._take()
        try:
            self._send(batch)
        finally:
            for part in batch:
                part.finished = True
                part.woken.set()
            with self._lock:
                if self._queue:
                    self._queue[0].woken.set()  # not finished: it sends the next batch
                else:
                    self._busy = False

    def _take(self) -> list[_Part]:
        """The queue's head, and the parts behind it that fit beside it (in order; lock held)."""
        batch = [self._queue.pop(0)]
        compares, ops, keys = len(batch[0].compare), len(batch[0].success), set(batch[0].keys)
        while self._queue:
            part = self._queue[0]
            if (
                compares + len(part.compare) > self.max_ops
                or ops + len(part.success) > self.max_ops
                or not keys.isdisjoint(part.keys)  # etcd refuses a key written twice in one transaction
            ):
                break
            batch.append(self._queue.pop(0))
            compares, ops = compares + len(part.compare), ops + len(part.success)
            keys |= part.keys
        return batch

    def _send(self, batch: list[_Part]) -> None:
        self.transactions += 1
        if len(batch) == 1:  # alone: exactly the caller's own transaction and answer
            try:
                batch[0].answer = self.txn(batch[0].compare, batch[0].success)
            except Exception as exc:
                batch[0].error = exc
            return
        self.combined += 1
        compare = [c for part in batch for c in part.compare]
        success = [op for part in batch for op in part.success]
        try:
            written, revision = self.txn(compare, success)
        except Etcd3Exception:
            return  # refused (a lapsed lease, a limit): nothing landed; each sends its own (answer None)
        except Exception as exc:  # etcd unreachable: each would have failed alone too
            for part in batch:
                part.error = exc
            return
        if written:
            for part in batch:
                part.answer = (True, revision)
        # else: some compare failed, perhaps only one part's; nothing landed, each sends its own


def _key_of(op: dict[str, Any]) -> str:
    """The key an operation writes (``etcd_wire.put_op`` / ``delete_op`` shape)."""
    body = op.get("request_put") or op.get("request_delete_range") or {}
    return str(body.get("key", ""))
