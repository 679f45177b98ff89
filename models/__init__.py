"""Fine-tuned Chinese model heads for qa-engine (issue #6).

A character-level tokenizer and a small BERT encoder pretrained with masked-language
modelling, five classification heads (empathy, customer emotion, contextual violation, turn violation,
resolution), inference backends (onnxruntime int8, torch, vLLM judge) and the detectors
that plug into ``qa_engine`` through the ``qa_engine.detectors`` entry points. Heavy
imports (torch, onnxruntime, transformers) happen inside functions, so importing this
package costs nothing when the model is not used.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_MODEL = PACKAGE_DIR / "qa_zh_char"   # the committed artefacts (tokenizer + int8 ONNX + manifest)
DATA_DIR = PACKAGE_DIR / "data"              # the labelled (synthetic) data and its hand-written pools
