"""Service-standard measurements (floor: qa_engine; pure).

Times are measured between turn timestamps; when any timestamp is missing, or the timestamps
(start time first) go back in time, every time metric is ``None`` — unknown, not zero — and
the scorecard skips the time standards; timestamps out of order are flagged in the metrics.
"""

from __future__ import annotations

from qa_engine.findings import ServiceMetrics
from qa_engine.lexicons import Lexicons
from qa_engine.schema import Conversation, Role
from qa_engine.text import fold

_RESPONDERS = (Role.AGENT, Role.BOT)


def service_metrics(conversation: Conversation, lexicons: Lexicons) -> ServiceMetrics:
    """Measure first response, greeting, longest wait, closing invite and bot hand-over."""
    turns = conversation.turns
    compact = [fold(turn.text) for turn in turns]
    cue = lexicons.cues
    out_of_order = not _in_order(conversation)
    timed = conversation.has_timestamps and not out_of_order

    first_customer = next((i for i, t in enumerate(turns) if t.role is Role.CUSTOMER), None)
    first_reply = None if first_customer is None else next(
        (i for i in range(first_customer + 1, len(turns)) if turns[i].role in _RESPONDERS), None)
    greeting_turn = next((i for i, t in enumerate(turns) if t.role in _RESPONDERS), None)
    greeted = greeting_turn is not None and cue("service", "greeting").first(compact[greeting_turn]) is not None

    first_response_s = greeting_s = None
    if timed and first_reply is not None:
        first_response_s = _seconds(conversation, first_customer, first_reply)
    if timed and greeted and greeting_turn is not None:
        opened = conversation.start_time or turns[0].timestamp
        greeting_s = (turns[greeting_turn].timestamp - opened).total_seconds()  # type: ignore[operator]

    longest = longest_turn = None
    if timed:
        waiting_since = None
        for index, turn in enumerate(turns):
            if turn.role is Role.CUSTOMER and waiting_since is None:
                waiting_since = index
            elif turn.role in _RESPONDERS and waiting_since is not None:
                gap = _seconds(conversation, waiting_since, index)
                if longest is None or gap > longest:
                    longest, longest_turn = gap, index
                waiting_since = None

    responder_turns = [i for i, t in enumerate(turns) if t.role in _RESPONDERS]
    closing = any(cue("service", "closing_invite").first(compact[i]) for i in responder_turns[-3:])
    bot_failures = sum(1 for i, t in enumerate(turns)
                       if t.role is Role.BOT and cue("service", "bot_failure").first(compact[i]))
    # a hand-over is a system notice of it, or the first human agent turn after the bot
    first_bot = next((i for i, t in enumerate(turns) if t.role is Role.BOT), len(turns))
    handovers = [i for i, t in enumerate(turns)
                 if (t.role is Role.SYSTEM and cue("service", "handover").first(compact[i]))
                 or (t.role is Role.AGENT and i > first_bot)]
    handover_turn = handovers[0] if handovers else None
    return ServiceMetrics(
        first_response_s=first_response_s, first_response_turn=first_reply, greeting_s=greeting_s,
        greeted=greeted, longest_agent_gap_s=longest, longest_agent_gap_turn=longest_turn,
        closing_invite=closing, bot_failures=bot_failures, handed_over=handover_turn is not None,
        handover_turn=handover_turn, timestamps_out_of_order=out_of_order,
    )


def _in_order(conversation: Conversation) -> bool:
    """Whether the timestamps present (the start time, then the turns') never go back in time."""
    times = [t.timestamp for t in conversation.turns if t.timestamp is not None]
    if conversation.start_time is not None:
        times.insert(0, conversation.start_time)
    return all(earlier <= later for earlier, later in zip(times, times[1:]))


def _seconds(conversation: Conversation, earlier: int, later: int) -> float:
    start, end = conversation.turns[earlier].timestamp, conversation.turns[later].timestamp
    return (end - start).total_seconds()  # type: ignore[operator]
