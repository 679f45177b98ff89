"""The training recipe's settings (no heavy imports: the CLI reads the defaults at start-up)."""

from __future__ import annotations

from dataclasses import dataclass, field

from models import DATA_DIR, PACKAGE_DIR, SHIPPED_MODEL

LINES_GLOB = PACKAGE_DIR.parent / "benchmarks" / "data" / "compliance_lines*.jsonl"

MODEL_NAME = "qa_zh_char"
MODEL_VERSION = "0.3.0"
PRETRAIN_LENGTH = 64  # MLM on short windows (CPU budget); the heads see up to MAX_LENGTH


@dataclass(frozen=True)
class FinetuneSettings:
    """One fine-tuning run's optimiser settings (the teacher's and the student's differ)."""

    epochs: int
    batch: int
    lr: float
    seed: int


@dataclass
class TrainConfig:
    """Everything a run depends on; recorded in the manifest and the card."""

    corpora: list[str] = field(default_factory=list)   # empty: the bundled synthetic text and labelled set
    data_dir: str = str(DATA_DIR)                      # synthetic labelled set (no corpus given)
    labels_dir: str = str(DATA_DIR / "real")           # labels of the real corpora, by reference
    compliance_lines: str = str(LINES_GLOB)            # blind hand-written agent lines: dev split trains, test measures
    teacher_layers: int = 6                            # e5-small layers the teacher keeps (0: no teacher)
    teacher_epochs: int = 2
    teacher_batch: int = 16
    teacher_lr: float = 4e-5
    reuse_teacher: bool = False                        # distil from the teacher a previous run left in run_dir
    output: str = str(SHIPPED_MODEL)
    run_dir: str = str(PACKAGE_DIR / "runs" / MODEL_NAME)
    seed: int = 20261106
    hidden: int = 192
    layers: int = 2
    attention_heads: int = 4
    pretrain_steps: int = 1500
    pretrain_batch: int = 32
    pretrain_lr: float = 5e-4
    finetune_epochs: int = 6
    finetune_batch: int = 16
    finetune_lr: float = 2e-4
    device: str = "auto"
    write_card: bool = True

    def student_settings(self) -> FinetuneSettings:
        return FinetuneSettings(self.finetune_epochs, self.finetune_batch, self.finetune_lr, self.seed)

    def teacher_settings(self) -> FinetuneSettings:
        return FinetuneSettings(self.teacher_epochs, self.teacher_batch, self.teacher_lr, self.seed)
