"""Architecture guarantees: the scoring core imports no edge, and extras stay optional."""

from __future__ import annotations

import subprocess
import sys

from conftest import SAMPLES


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_scoring_core_imports_no_ray_http_or_sibling_package():
    result = _run(
        "import sys\n"
        "import qa_engine.pipeline, qa_engine.baselines, qa_engine.scorecard, qa_engine.metrics\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'ray', 'fastapi', 'starlette', 'uvicorn', 'httpx', 'batch', 'serve', 'rules', 'models', 'qa_engine.io',"
        " 'torch', 'onnxruntime', 'transformers', 'tokenizers'}"
        " or m in {'qa_engine.io', 'qa_engine.cli', 'pyarrow'})\n"
        "print(bad)\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_rule_detector_arrives_through_the_registry():
    result = _run(
        "from qa_engine.pipeline import Pipeline\n"
        "p = Pipeline.from_config()\n"
        "print(type(p.detectors[0]).__module__)\n")
    assert result.stdout.strip() == "rules.detector", result.stderr


def test_batch_without_ray_names_its_extra(tmp_path):
    result = _run("import sys\nsys.modules['ray'] = None\n"
                  "from pathlib import Path\nfrom batch.job import run_job\n"
                  f"run_job([{str(SAMPLES)!r}], Path({str(tmp_path / 'out')!r}))\n")
    assert result.returncode != 0 and "pip install 'qa-engine[batch]'" in result.stderr


def test_model_detectors_arrive_through_the_registry_and_serve_without_torch():
    """The shipped int8 model runs on onnxruntime alone; torch is for training and GPUs."""
    result = _run(
        "import sys\n"
        "from qa_engine.config import load_pipeline\n"
        "from pathlib import Path\n"
        f"p = load_pipeline(Path({str(SAMPLES.parent / 'conf' / 'models.yaml')!r}))\n"
        "print(sorted({type(d).__module__ for d in p.detectors}), 'torch' in sys.modules)\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['models.detectors'] False"
