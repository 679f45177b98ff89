"""The Ray batch job (floor: batch; imports qa_engine and Ray, nothing imports it).

Scores a month of transcript files with a pool of Ray actors on an embedded local Ray or
an existing cluster, through the same `qa_engine.pipeline.Pipeline` as the CLI.
"""
