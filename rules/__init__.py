"""Rule packs and the rule detector (floor: rules; imports qa_engine, never batch/serve/models)."""
