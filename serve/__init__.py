"""The live warning service (floor: serve; imports qa_engine, nothing imports it).

A FastAPI app over the one `qa_engine.pipeline.Pipeline`: HTTP checks, a WebSocket for live
drafts, health and Prometheus metrics, the agent console, and a Ray Serve deployment of the
same app for scaling out.
"""
