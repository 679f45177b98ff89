"""``qa-engine train``: reproduce the shipped model (registered through ``qa_engine.commands``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from models import SHIPPED_MODEL
from models.config import TrainConfig


def train(
    corpus: Annotated[Optional[Path], typer.Option(help="Corpora folder laid out like ../shared/corpora (JDDC / ECD "
                                                   "dialogues + review text). Default: the bundled synthetic set.")] = None,
    labels: Annotated[Path, typer.Option(help="Labels of the corpus conversations, by reference (agent_turns.jsonl, "
                                              "conversations.jsonl).")] = Path(TrainConfig.labels_dir),
    teacher_layers: Annotated[int, typer.Option(help="e5-small layers the teacher keeps (0: no teacher).")]
        = TrainConfig.teacher_layers,
    reuse_teacher: Annotated[bool, typer.Option(help="Distil from the teacher an earlier run left in --run-dir "
                                                     "instead of fine-tuning it again.")] = False,
    output: Annotated[Optional[Path], typer.Option(
        help="Artefact directory (tokenizer, int8 ONNX, manifest, CARD.md): a new or empty folder. Default: a new "
             "folder under --run-dir, named by the time. The shipped model's folder only with --overwrite-shipped.")]
        = None,
    overwrite_shipped: Annotated[bool, typer.Option(help=f"Allow --output {SHIPPED_MODEL} (replaces the shipped "
                                                         "model).")] = False,
    run_dir: Annotated[Path, typer.Option(help="Run directory for fp32 checkpoint and ONNX (not shipped).")]
        = Path(TrainConfig.run_dir),
    seed: Annotated[int, typer.Option()] = TrainConfig.seed,
    pretrain_steps: Annotated[int, typer.Option()] = TrainConfig.pretrain_steps,
    epochs: Annotated[int, typer.Option(help="Fine-tuning epochs.")] = TrainConfig.finetune_epochs,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda.")] = "auto",
) -> None:
    """Fine-tune the e5 teacher on labelled corpus conversations, distil it into the char-level student,
    export the student as int8 ONNX and write the model card."""
    output = output or run_dir / time.strftime("model-%Y%m%d-%H%M%S")
    if output.resolve() == SHIPPED_MODEL.resolve():
        if not overwrite_shipped:
            raise typer.BadParameter(f"{output} is the shipped model; pass --overwrite-shipped to replace it",
                                     param_hint="--output")
    elif output.exists() and any(output.iterdir()):
        raise typer.BadParameter(f"{output} exists and is not empty; choose a new folder", param_hint="--output")
    from models.train import train as run

    config = TrainConfig(corpora=[str(corpus)] if corpus else [], labels_dir=str(labels), teacher_layers=teacher_layers,
                         reuse_teacher=reuse_teacher,
                         output=str(output), run_dir=str(run_dir), seed=seed, pretrain_steps=pretrain_steps,
                         finetune_epochs=epochs, device=device)
    report = run(config)
    typer.echo(f"wrote {output} in {report['timings']['total_s']} s (card: {output / 'CARD.md'})")


if __name__ == "__main__":
    typer.run(train)
