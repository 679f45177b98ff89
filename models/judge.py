"""Optional "LLM judge": a second opinion on flagged conversations from a local LLM served by vLLM (GPU).

The user supplies a local model directory (an instruction-tuned chat model; nothing is
downloaded). Prompt building and verdict parsing are plain functions, tested on any machine;
only ``LlmJudge`` needs vLLM and a GPU (``pip install 'qa-engine[gpu]'``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qa_engine.findings import Finding
from qa_engine.schema import Conversation
from models.artefact import ModelUnavailable

ROLE_NAMES = {"customer": "顾客", "agent": "客服", "bot": "机器人", "system": "系统"}
_JSON = re.compile(r"\{.*\}", re.S)


def judge_prompt(conversation: Conversation, findings: Sequence[Finding]) -> str:
    """Ask for a JSON verdict on each flagged finding of one conversation."""
    lines = [f"{i}. {ROLE_NAMES[t.role.value]}：{t.text}" for i, t in enumerate(conversation.turns)]
    flagged = [f"- [{n}] 第{f.turn}轮 “{f.evidence}” 规则 {f.rule_id}（{f.category}）" for n, f in enumerate(findings)]
    return ("你是电商客服质检员。阅读对话，判断每条被标记的内容在上下文中是否真的违规"
            "（广告法绝对化用语、过度承诺、功效宣称、泄露隐私、辱骂或推诿）。\n对话：\n" + "\n".join(lines)
            + "\n被标记：\n" + "\n".join(flagged)
            + '\n只输出JSON：{"verdicts": [{"index": 0, "violation": true, "reason": "…"}]}')


def parse_verdicts(text: str, count: int) -> list[dict[str, Any] | None]:
    """The judge's verdict per finding (``None`` where the output says nothing usable)."""
    verdicts: list[dict[str, Any] | None] = [None] * count
    match = _JSON.search(text)
    try:
        items = json.loads(match.group(0))["verdicts"] if match else []
    except (json.JSONDecodeError, KeyError, TypeError):
        items = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("index"), int) and 0 <= item["index"] < count \
                and isinstance(item.get("violation"), bool):
            verdicts[item["index"]] = {"violation": item["violation"], "reason": str(item.get("reason", ""))}
    return verdicts


class LlmJudge:
    """Batch-judges flagged conversations with vLLM's offline ``LLM.chat`` (greedy, bounded output).

    Raises:
        ModelUnavailable: vLLM is not installed, no GPU, or ``model_dir`` is not a local directory.
    """

    def __init__(self, model_dir: str | Path, max_tokens: int = 512, **engine_args: Any) -> None:
        if not Path(model_dir).is_dir():
            raise ModelUnavailable(f"LLM judge needs a local model directory; {model_dir} is not one")
        try:
            import torch
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise ModelUnavailable("the LLM judge needs vLLM on a GPU machine: pip install 'qa-engine[gpu]'") from exc
        if not torch.cuda.is_available():
            raise ModelUnavailable("the LLM judge needs a CUDA GPU")
        self.llm = LLM(model=str(model_dir), **engine_args)
        self.sampling = SamplingParams(temperature=0.0, max_tokens=max_tokens)

    def judge(self, flagged: Sequence[tuple[Conversation, Sequence[Finding]]]) -> list[list[dict[str, Any] | None]]:
        prompts = [[{"role": "user", "content": judge_prompt(c, f)}] for c, f in flagged]
        outputs = self.llm.chat(prompts, self.sampling)
        return [parse_verdicts(out.outputs[0].text, len(f)) for out, (_, f) in zip(outputs, flagged)]
