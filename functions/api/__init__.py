"""The HTTP API (FastAPI), served by uvicorn locally and by Mangum in Lambda."""
