"""One live WebSocket session: conversation turns in, warnings and alerts out.

Client → server (JSON): ``{"type": "turn", "role": "customer", "text": …}``,
``{"type": "draft", "seq": n, "text": …}``, ``{"type": "sent", "text": …}``.
Server → client: ``{"type": "warnings", "seq": n, "warnings": […], "versions": …}``,
``{"type": "alerts", "alerts": [{"code", "message"}]}``, ``{"type": "sent", "ignored_rules": […]}``,
``{"type": "error", "code", "message", "fields"?, "seq"?}``.

Drafts are superseded, not queued: only the newest draft is checked, and a result for a
draft that a newer one replaced while it was being checked is dropped. A bad message (over
the size limit, not JSON, too deeply nested, a field of the wrong type or size) is answered
with an error and the session goes on. Scoring runs on worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from anyio import to_thread
from fastapi import WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from qa_engine.schema import Conversation, Role, Turn
from qa_engine.text import fold
from serve.models import LiveDraft, LiveMessage, LiveSent, LiveTurn, Warning, validation_fields
from serve.service import Service

MAX_TURNS = 500
log = logging.getLogger("qa_engine.serve")


class LiveSession:
    def __init__(self, service: Service, socket: WebSocket, session_id: str, conversation_id: str | None) -> None:
        self.service = service
        self.socket = socket
        self.session_id = session_id
        self.conversation_id = conversation_id
        self.turns: list[Turn] = []
        self._draft: tuple[int, str] | None = None
        self._latest_seq = -1
        self._wake = asyncio.Event()
        self._logging = asyncio.Lock()  # a draft's warnings are logged before a later "sent" is
        self._alerts: list[dict[str, str]] = []

    async def run(self) -> None:
        checker = asyncio.create_task(self._check_latest())
        try:
            while True:
                message = await self.socket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                raw = message.get("text")
                await self._answering(self._handle(message.get("bytes", b"") if raw is None else raw))
        finally:
            checker.cancel()

    async def _answering(self, work: Any, seq: int | None = None) -> None:
        """Run one message's work; an unexpected failure is logged and answered, and the session goes on."""
        try:
            await work
        except WebSocketDisconnect:
            raise
        except Exception:
            log.exception("live session %s: a message failed", self.session_id)
            await self._error("E500", "this message could not be handled; the next one will be", seq=seq)

    async def _handle(self, raw: str | bytes) -> None:
        size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
        limit = self.service.settings.max_body_bytes
        if size > limit:
            await self._error("E413", f"message of {size} bytes, over the {limit}-byte limit")
            return
        if isinstance(raw, bytes):  # a binary frame: JSON in UTF-8
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                await self._error("E400", f"the message is not valid UTF-8 JSON (byte {exc.start})")
                return
        try:
            message = LiveMessage.validate_json(raw)
        except ValidationError as exc:
            await self._error("E422", "invalid message", fields=validation_fields(exc.errors()))
            return
        if isinstance(message, LiveDraft):
            self._latest_seq = self._latest_seq + 1 if message.seq is None else message.seq
            self._draft = (self._latest_seq, message.text)
            self._wake.set()
        elif isinstance(message, LiveTurn):
            self._append(Turn(role=message.role, text=message.text))
            await self._send_alerts()
        elif isinstance(message, LiveSent):
            await self._sent(message.text)

    def _append(self, turn: Turn) -> None:
        self.turns = [*self.turns, turn][-MAX_TURNS:]

    async def _check_latest(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._answering(self._check(), seq=self._latest_seq)

    async def _check(self) -> None:
        async with self._logging:
            if self._draft is None:
                return
            seq, text = self._draft
            findings = await to_thread.run_sync(self.service.check, text, self.turns)
            if seq != self._latest_seq:
                return  # superseded while being checked
            self.service.warning_log.shown(self.session_id, self.conversation_id, text, findings,
                                           self.service.versions_json)  # queues the rows: no thread needed
        await self._send({"type": "warnings", "seq": seq, "warnings": [Warning.of(f).model_dump() for f in findings],
                          "versions": self.service.versions})

    async def _sent(self, text: str) -> None:
        async with self._logging:
            findings = await to_thread.run_sync(self.service.check, text, self.turns)
            ignored = self.service.warning_log.sent(self.session_id, self.conversation_id, text, findings)
            self._append(Turn(role=Role.AGENT, text=text))
            self._draft = None
        await self._send({"type": "sent", "ignored_rules": ignored})
        await self._send_alerts()

    async def _send_alerts(self) -> None:
        alerts = await to_thread.run_sync(self.alerts, self.turns)
        if alerts != self._alerts:
            self._alerts = alerts
            await self._send({"type": "alerts", "alerts": alerts})

    def alerts(self, turns: Sequence[Turn]) -> list[dict[str, str]]:
        """Conversation-level alerts from the same pipeline that scores the conversation."""
        if not turns:
            return []
        conversation = Conversation(conversation_id=self.conversation_id or self.session_id, turns=tuple(turns))
        report = self.service.pipeline.score(conversation)
        lexicons = self.service.pipeline.lexicons
        alerts = []
        customer = [t.text for t in turns if t.role is Role.CUSTOMER]
        complaint = lexicons.cues("complaint", "cues")
        angry = lexicons.cues("resolution", "customer_unresolved")
        if customer and (angry.first(fold(customer[-1])) or
                         (len(customer) >= 2 and all(complaint.first(fold(t)) for t in customer[-2:]))):
            alerts.append({"code": "customer_anger_rising",
                           "message": "The customer is getting angrier: acknowledge it before anything else"})
        if report.empathy == "missing":
            alerts.append({"code": "no_empathy_after_complaint",
                           "message": "The customer complained and no empathy has been shown yet"})
        return alerts

    async def _error(self, code: str, message: str, **extra: Any) -> None:
        await self._send({"type": "error", "code": code, "message": message,
                          **{k: v for k, v in extra.items() if v is not None}})

    async def _send(self, payload: dict[str, Any]) -> None:
        await self.socket.send_text(json.dumps(payload, ensure_ascii=False))
