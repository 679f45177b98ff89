"""One live WebSocket session: conversation turns in, warnings and alerts out.

Client → server (JSON): ``{"type": "turn", "role": "customer", "text": …}``,
``{"type": "draft", "seq": n, "text": …}``, ``{"type": "sent", "text": …}``.
Server → client: ``{"type": "warnings", "seq": n, "warnings": […], "versions": …}``,
``{"type": "alerts", "alerts": [{"code", "message"}]}``, ``{"type": "sent", "ignored_rules": […]}``,
``{"type": "error", "message": …}``.

Drafts are superseded, not queued: only the newest draft is checked, and a result for a
draft that a newer one replaced while it was being checked is dropped.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from fastapi import WebSocket
from pydantic import ValidationError

from qa_engine.schema import Conversation, Role, Turn
from qa_engine.text import fold
from serve.models import Warning

if TYPE_CHECKING:
    from serve.app import Service

MAX_TURNS = 500


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
        self._alerts: list[dict[str, str]] = []

    async def run(self) -> None:
        checker = asyncio.create_task(self._check_latest())
        try:
            while True:
                await self._handle(await self.socket.receive_text())
        finally:
            checker.cancel()

    async def _handle(self, raw: str) -> None:
        try:
            message = json.loads(raw)
            kind = message["type"]
            if kind == "draft":
                seq, text = int(message.get("seq", self._latest_seq + 1)), str(message["text"])
                self._latest_seq = seq
                self._draft = (seq, text)
                self._wake.set()
            elif kind == "turn":
                self._append(Turn(role=Role(message["role"]), text=str(message["text"])))
                await self._send_alerts()
            elif kind == "sent":
                await self._sent(str(message["text"]))
            else:
                await self._send({"type": "error", "message": f"unknown message type {kind!r}"})
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            await self._send({"type": "error", "message": f"bad message: {exc}"})

    def _append(self, turn: Turn) -> None:
        self.turns = [*self.turns, turn][-MAX_TURNS:]

    async def _check_latest(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._draft is None:
                continue
            seq, text = self._draft
            findings = self.service.check(text, self.turns)
            if seq != self._latest_seq:
                continue  # superseded while being checked
            self.service.warning_log.shown(self.session_id, self.conversation_id, text, findings,
                                           self.service.versions_json())
            await self._send({"type": "warnings", "seq": seq, "warnings": [Warning.of(f).model_dump() for f in findings],
                              "versions": self.service.versions()})

    async def _sent(self, text: str) -> None:
        findings = self.service.check(text, self.turns)
        ignored = self.service.warning_log.sent(self.session_id, self.conversation_id, text, findings)
        self._append(Turn(role=Role.AGENT, text=text))
        self._draft = None
        await self._send({"type": "sent", "ignored_rules": ignored})
        await self._send_alerts()

    async def _send_alerts(self) -> None:
        alerts = self.alerts()
        if alerts != self._alerts:
            self._alerts = alerts
            await self._send({"type": "alerts", "alerts": alerts})

    def alerts(self) -> list[dict[str, str]]:
        """Conversation-level alerts from the same pipeline that scores the conversation."""
        if not self.turns:
            return []
        conversation = Conversation(conversation_id=self.conversation_id or self.session_id, turns=tuple(self.turns))
        report = self.service.pipeline.score(conversation)
        lexicons = self.service.pipeline.lexicons
        alerts = []
        customer = [t.text for t in self.turns if t.role is Role.CUSTOMER]
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

    async def _send(self, payload: dict[str, Any]) -> None:
        await self.socket.send_text(json.dumps(payload, ensure_ascii=False))
