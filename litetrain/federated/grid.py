"""An in-process Flower ``Grid``: the ServerApp's messages go straight to a ClientApp
called once per destination node, in this process, one after the other.

This is Flower's Message API without a SuperLink or Ray: the strategy, the records and the
ClientApp are the very objects a deployment runs, only the transport is a function call,
so a simulation of 100 nodes starts in milliseconds. Each node keeps its own ``Context``
(``node_config`` holds ``partition-id``/``num-partitions`` as in Flower's simulation).
A ClientApp that raises becomes an error reply (``CLIENT_APP_RAISED_EXCEPTION``), exactly
as Flower's simulation engine reports it; a message is never left without a reply.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from uuid import uuid4

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from .errors import FederatedError

FIRST_NODE_ID = 1001  # clear of the SuperLink's own id


class LocalGrid(Grid):
    """``nodes`` simulated nodes (ids 1001, 1002, …) that all run ``app``.

    Use it inside :meth:`active`, which gives this process the ServerApp's identity that
    Flower's ``Message`` constructor reads (a SuperLink sets it for a real ServerApp).
    """

    def __init__(self, app: ClientApp, nodes: int, run_id: int = 1,
                 run_config: dict | None = None, keep_tracebacks: bool = False):
        if nodes < 1:
            raise FederatedError(f"grid: need at least one node, got {nodes}")
        self.app = app
        self.run_id = run_id
        self.keep_tracebacks = keep_tracebacks
        self._run = None
        self.contexts = {
            node_id: Context(run_id=run_id, node_id=node_id,
                             node_config={"partition-id": node_id - FIRST_NODE_ID,
                                          "num-partitions": nodes},
                             state=RecordDict(), run_config=dict(run_config or {}))
            for node_id in range(FIRST_NODE_ID, FIRST_NODE_ID + nodes)}
        self._replies: dict[str, Message] = {}

    @contextmanager
    def active(self) -> Iterator[LocalGrid]:
        saved = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
        TaskIdentity.task_id, TaskIdentity.run_id = 1, self.run_id
        TaskIdentity.node_id = SUPERLINK_NODE_ID
        try:
            yield self
        finally:
            TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = saved

    def set_run(self, run) -> None:
        self._run = run

    @property
    def run(self):
        if self._run is None:
            raise FederatedError("grid: no run set")
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int,
                       group_id: str, ttl: float | None = None) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def _deliver(self, msg: Message) -> Message:
        context = self.contexts.get(msg.metadata.dst_node_id)
        if context is None:
            return Message(Error(code=ErrorCode.UNKNOWN,
                                 reason=f"no node {msg.metadata.dst_node_id}"), reply_to=msg)
        try:
            return self.app(msg, context)
        except Exception as e:  # a failing node is a counted failure, not a failed run
            reason = f"{type(e).__name__}: {e}"
            if self.keep_tracebacks:
                reason += "\n" + traceback.format_exc()
            return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason),
                           reply_to=msg)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            msg_id = str(uuid4())
            msg.metadata.__dict__["_message_id"] = msg_id
            reply = self._deliver(msg)
            reply.metadata.__dict__["_message_id"] = str(uuid4())
            self._replies[msg_id] = reply
            ids.append(msg_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in list(message_ids) if i in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))
