"""The floor of the intake benchmark: the same server stack (FastAPI on uvicorn, httptools, uvloop, the
intake's uvicorn settings) with one endpoint that reads the body and answers 202 without doing anything.

``python -m bench.ingest_floor PORT``; the endpoint is ``POST /floor``.
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

from kep.ingest.server import uvicorn_config
from kep.ingest.settings import IngestSettings

ANSWER = b'{"event_id":"floor","topic":"floor","partition":0,"offset":0}'


def app() -> FastAPI:
    floor = FastAPI()

    async def answer(request: Request) -> Response:
        await request.body()
        return Response(ANSWER, status_code=202, media_type="application/json")

    floor.add_api_route("/floor", answer, methods=["POST"])
    return floor


def main() -> None:
    settings = IngestSettings(port=int(sys.argv[1]), status_store="none")
    uvicorn.Server(uvicorn_config(app(), settings)).run()


if __name__ == "__main__":
    main()
