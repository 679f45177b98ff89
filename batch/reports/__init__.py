"""Reports over scored results (floor: batch; imports qa_engine and rules, never Ray).

Auditor violation exports (XLSX / CSV), the QA dashboard (one offline HTML file) and the
reviewers' verdicts that calibrate them, built from a batch output folder or a
``qa-engine score`` results file.
"""
