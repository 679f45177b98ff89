"""The five heads: their labels and how a turn, a conversation or a rule hit becomes model input.

Training, evaluation and the detectors all build inputs here, so the model never sees text
prepared one way in training and another at inference. Text is folded first (NFKC,
traditional → simplified, lower case, zero-width removed: ``qa_engine.text.fold``), the same
view the rule matcher works on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from qa_engine.schema import Conversation, Role, Turn
from qa_engine.text import fold
from models.annotation import turn_id
from models.tokenizer import ROLE_TOKENS

HEADS: dict[str, tuple[str, ...]] = {
    "empathy": ("no", "yes"),                               # agent turn
    "emotion": ("negative", "neutral", "positive"),         # customer turn
    "violation": ("excused", "real"),                       # a rule hit in its context
    "resolution": ("resolved", "unresolved", "escalated"),  # whole conversation
    "turn_violation": ("none", "conduct", "efficacy"),      # agent turn, with or without a rule hit
}
# The categories the turn head raises on its own (abuse, deflection and efficacy claims come in wording
# no phrase list covers; the other categories' terms are closed classes the packs enumerate).
MODEL_RAISED = HEADS["turn_violation"][1:]
# Input budgets (characters ≈ tokens for the char student): what keeps the CPU path within its speed
# target on real-length conversations (27 turns) while keeping the evidence: a long agent turn keeps its
# head and its tail (templates close with the apology: …给您带来不便，还请您见谅).
TURN_HEAD = TURN_TAIL = 48  # a turn longer than 96 characters is judged on its first and last 48
CONTEXT_CHARS = 24          # ... and the end of the other speaker's turn before it
_CONVERSATION_BUDGET = 128  # resolution reads the end of the conversation


@dataclass(frozen=True)
class Example:
    """One model input: text (and optional second segment) for one head, with its gold label index."""

    head: str
    text: str
    pair: str | None = None
    label: int = -1
    source: str = ""
    rule: int = -1  # violation head: the rule detector's own decision on the hit (1 counted, 0 excused)
    soft: tuple[float, ...] | None = None  # the teacher's probabilities (distillation target)


def turn_input(text: str) -> str:
    return fold(text)


def turn_pair(text: str, context: str | None) -> tuple[str, str | None]:
    """A turn as every turn head reads it: its text, and the end of the other speaker's turn before it.

    Empathy and customer emotion are judged on the same input, so one forward pass per turn serves both.
    """
    folded = fold(text)
    if len(folded) > TURN_HEAD + TURN_TAIL:
        folded = folded[:TURN_HEAD] + "…" + folded[-TURN_TAIL:]
    return folded, (fold(context)[-CONTEXT_CHARS:] if context else None) or None


def previous_other(conversation: Conversation, index: int) -> str | None:
    """The last turn before ``index`` spoken by someone else (what a turn answers or reacts to)."""
    role = conversation.turns[index].role
    return next((t.text for t in reversed(conversation.turns[:index]) if t.role is not role), None)


def conversation_input(turns: Sequence[Turn]) -> str:
    """Role-marked turns, keeping the end of long conversations (where resolution shows)."""
    parts: list[str] = []
    used = 0
    for turn in reversed(turns):
        part = ROLE_TOKENS[turn.role.value] + fold(turn.text).replace(" ", "")
        if used + len(part) > _CONVERSATION_BUDGET:
            parts.append(part[len(part) - (_CONVERSATION_BUDGET - used):])
            break
        parts.append(part)
        used += len(part)
    return "".join(reversed(parts))


def hit_input(text: str, start: int, end: int, category: str) -> str:
    """The utterance with the hit marked: ``[ad_law]亲，这款是[H]全网最好[/H]的``."""
    return f"[{category}]{fold(text[:start])}[H]{fold(text[start:end])}[/H]{fold(text[end:])}"


def is_candidate(hit: Any) -> bool:
    """A rule hit the violation head decides: any hit, excused or not, except one in a role the rule excludes."""
    return not (hit.suppressed_by or "").startswith("role")


def hybrid_decision(rule_counts: bool, p_real: float, keep: float, restore: float) -> bool:
    """The rule detector's decision unless the model is confident otherwise.

    A hit the rules count stays while the model's p(real) ≥ ``keep`` (low: only confident false
    positives go); a hit context excused comes back only when p(real) ≥ ``restore`` (high).
    """
    return p_real >= (keep if rule_counts else restore)


def hit_candidates(rule_detector: Any, conversation: Conversation, index: int) -> list[Any]:
    """Every rule hit on turn ``index``, the excused ones included, except customer speech."""
    return [f for f in rule_detector.explain(conversation) if f.turn == index and is_candidate(f)]


def turn_violation_label(categories: Iterable[str]) -> int:
    """The turn head's class of a labelled agent turn: the first model-raised category among its labels."""
    found = set(categories)
    return next((HEADS["turn_violation"].index(c) for c in MODEL_RAISED if c in found), 0)


def raised_category(probs: Sequence[float], threshold: float) -> str | None:
    """The category the turn head raises on its own: the likelier of conduct and efficacy, when its
    probability reaches the threshold tuned on dev (real agent turns almost never violate: a high bar)."""
    best = max(range(1, len(probs)), key=lambda i: probs[i])
    return HEADS["turn_violation"][best] if probs[best] >= threshold else None


def line_rows(lines: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hand-written agent lines (``benchmarks/data/compliance_lines*.jsonl``) as labelled agent utterances."""
    return [{"id": line["id"], "role": "agent", "text": line["text"], "context": line.get("context") or "",
             "compliance": list(line["categories"]) if line["violation"] else []} for line in lines]


def compliance_line_examples(lines: Iterable[dict[str, Any]]) -> list[Example]:
    """Turn-head *training* examples from the blind hand-written lines (dev split only: their test split
    measures what the packs and the model do on wording nobody fitted). Not for the contextual-violation
    head: trained on their rule hits too, it learned that a hit is usually real and stopped dropping the
    real corpora's false hits (test false violation turns 0.8 → 3.1 per 1,000)."""
    return [Example("turn_violation", *turn_pair(row["text"], row["context"]),
                    label=turn_violation_label(row["compliance"]), source=row["id"])
            for row in line_rows(line for line in lines if line["split"] == "dev")]


def turn_examples(rows: Iterable[dict[str, Any]]) -> list[Example]:
    """Empathy and turn-violation examples from agent utterances, emotion examples from customer ones."""
    examples = []
    for row in rows:
        text, pair = turn_pair(row["text"], row.get("context"))
        if row["role"] == "agent":
            examples.append(Example("empathy", text, pair, label=int(row["empathy"]), source=row["id"]))
            examples.append(Example("turn_violation", text, pair, label=turn_violation_label(row["compliance"]),
                                    source=row["id"]))
        else:
            examples.append(Example("emotion", text, pair, label=HEADS["emotion"].index(row["emotion"]),
                                    source=row["id"]))
    return examples


def utterance_conversation(row: dict[str, Any]) -> Conversation:
    """A labelled agent utterance with the customer turn before it (what the context stages look at)."""
    turns = ([Turn(role=Role.CUSTOMER, text=row["context"])] if row.get("context") else []) + \
        [Turn(role=Role(row["role"]), text=row["text"])]
    return Conversation(conversation_id=row["id"], turns=tuple(turns))


def violation_examples(rows: Iterable[dict[str, Any]], rule_detector: Any) -> list[Example]:
    """Each rule hit on a labelled agent utterance; real when its category is among the utterance's labels."""
    examples = []
    for row in rows:
        if row["role"] != "agent":
            continue
        conversation = utterance_conversation(row)
        last = len(conversation.turns) - 1
        for hit in hit_candidates(rule_detector, conversation, last):
            examples.append(Example("violation", hit_input(row["text"], hit.start, hit.end, hit.category),
                                    turn_input(row.get("context", "")) or None,
                                    label=int(hit.category in row["compliance"]),
                                    source=f"{row['id']}:{hit.rule_id}:{hit.start}", rule=int(hit.suppressed_by is None)))
    return examples


def conversation_of(record: dict[str, Any]) -> Conversation:
    return Conversation(conversation_id=record["conversation_id"],
                        turns=tuple(Turn(role=Role(t["role"]), text=t["text"]) for t in record["turns"]))


def resolution_examples(records: Iterable[dict[str, Any]]) -> list[Example]:
    return [Example("resolution", conversation_input(conversation_of(r).turns),
                    label=HEADS["resolution"].index(r["labels"]["resolution"]), source=r["conversation_id"])
            for r in records]


def golden_case_examples(rule_detector: Any, case_files: Iterable[Any]) -> list[Example]:
    """Violation-head and turn-head *training* examples from the rule packs' hand-decided golden cases.

    A hit is real when its category is that of a rule the case expects (the packs' authors
    decided 第一次, 最近, 不是最好 … one by one); an agent case is a conduct or efficacy turn when
    it expects a rule of that category. Never used for evaluation.
    """
    import yaml

    examples = []
    for path in case_files:
        for number, case in enumerate(yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]):
            context = [Turn(role=Role(t.get("role", "customer")), text=t["text"]) for t in case.get("context", [])]
            turn = Turn(role=Role(case.get("role", "agent")), text=case["text"])
            conversation = Conversation(conversation_id=f"{path.name}:{number}", turns=(*context, turn))
            expected = {rule_id.split(".")[0] for rule_id in case.get("expect", [])}
            previous = turn_input(context[-1].text) if context else None
            if turn.role is Role.AGENT:
                examples.append(Example("turn_violation", *turn_pair(case["text"], context[-1].text if context else None),
                                        label=turn_violation_label(expected), source=f"{path.name}:{number}"))
            for hit in hit_candidates(rule_detector, conversation, len(context)):
                examples.append(Example("violation", hit_input(case["text"], hit.start, hit.end, hit.category),
                                        previous, label=int(hit.category in expected),
                                        source=f"{path.name}:{number}:{hit.rule_id}",
                                        rule=int(hit.suppressed_by is None)))
    return examples


def unlabelled_examples(conversations: Iterable[Conversation], labelled: set[str]) -> list[Example]:
    """Turn and conversation inputs without gold labels, for distillation (the teacher's probabilities
    become their targets). ``labelled``: turn and conversation ids that already have gold examples."""
    examples = []
    for conversation in conversations:
        cid = conversation.conversation_id
        for index, turn in enumerate(conversation.turns):
            source = turn_id(cid, index)
            heads = {Role.AGENT: ("empathy", "turn_violation"), Role.CUSTOMER: ("emotion",)}.get(turn.role, ())
            if source not in labelled:
                examples += [Example(head, *turn_pair(turn.text, previous_other(conversation, index)), source=source)
                             for head in heads]
        if cid not in labelled:
            examples.append(Example("resolution", conversation_input(conversation.turns), source=cid))
    return examples


def with_soft_labels(examples: Sequence[Example], backend: Any) -> list[Example]:
    """Each example with the teacher's (``backend``) probabilities for its head attached."""
    from dataclasses import replace

    out = list(examples)
    for head in HEADS:
        chosen = [i for i, e in enumerate(out) if e.head == head]
        if not chosen:
            continue
        probs = backend.probabilities(head, [(out[i].text, out[i].pair) for i in chosen])
        for i, p in zip(chosen, probs):
            out[i] = replace(out[i], soft=tuple(round(float(v), 6) for v in p))
    return out
