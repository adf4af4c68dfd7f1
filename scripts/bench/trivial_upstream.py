"""The upstream of the gateway benchmark: a FastAPI app with one trivial endpoint and the JWKS the tokens need.

`python scripts/bench/trivial_upstream.py PORT` with the JWKS document in `BENCH_JWKS`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI

app = FastAPI()
JWKS: dict[str, Any] = json.loads(os.environ.get("BENCH_JWKS", '{"keys": []}'))


@app.get("/services/ping")
async def ping() -> dict[str, str]:
    """The trivial endpoint measured directly, through nginx and through the gateway."""
    return {"status": "ok"}


@app.get("/.well-known/jwks.json")
async def jwks() -> dict[str, Any]:
    """The keys the gateway verifies the benchmark's tokens with."""
    return JWKS


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )
