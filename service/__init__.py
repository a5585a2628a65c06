"""The job service: FastAPI app, job store, dispatcher, artifacts, CLI."""
