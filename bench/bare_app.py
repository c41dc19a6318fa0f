"""The P1 baseline: a bare FastAPI app served by the same uvicorn as the control plane."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def root() -> dict[str, str]:
    return {"status": "ok"}
