"""HTTP mode: the aiohttp app serving Bolt on /slack/events, /healthz, and 400 for malformed bodies.

Bolt parses a body before it verifies the signature, so a body it could not parse (or a timestamp
header that is not a number) was answered 500 with a traceback. Here every request is verified
first (forged or replayed: 401), then parsed (malformed: 400), and only then handed to Bolt.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


def build_web_app(app: AsyncApp, *, signing_secret: str | None, port: int) -> web.Application:
    """Bolt's aiohttp app with malformed bodies refused before Bolt sees them, and /healthz.

    `signing_secret` None: requests are not verified (as Bolt then does), only parsed."""
    web_app = app.web_app(path=EVENTS_PATH, port=port)
    verifier = SignatureVerifier(signing_secret) if signing_secret else None
    web_app.middlewares.append(_refuse_malformed(verifier))
    web_app.router.add_get("/healthz", _healthz)
    return web_app


def _why_malformed(body: bytes, content_type: str) -> str | None:
    """Why Bolt could not read this body (None when it can): Slack sends a JSON object."""
    try:
        parsed = parse_body(body.decode("utf-8"), content_type)
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    except json.JSONDecodeError as err:
        return f"the JSON does not parse ({err.msg} at character {err.pos})"
    if not isinstance(parsed, dict):
        return "the JSON is not an object"
    return None


def _refuse_malformed(verifier: SignatureVerifier | None) -> Middleware:
    @web.middleware
    async def refuse_malformed(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST" or request.path != EVENTS_PATH:
            return await handler(request)
        body = await request.read()  # aiohttp keeps it, so Bolt reads the same bytes after
        if verifier is not None and not _is_signed(verifier, body, request):
            return web.json_response({"error": "invalid request"}, status=401)  # as Bolt says it
        reason = _why_malformed(body, request.content_type)
        if reason is None:
            return await handler(request)
        log.warning("refused a request to %s: %s", EVENTS_PATH, reason)
        return web.Response(status=400, text=f"malformed request: {reason}")

    return refuse_malformed


def _is_signed(verifier: SignatureVerifier, body: bytes, request: web.Request) -> bool:
    """Slack's signature holds and is under five minutes old (the verifier checks both)."""
    try:
        return verifier.is_valid_request(body, dict(request.headers))
    except ValueError:  # a timestamp that is not a number, or a body slack_sdk cannot decode
        return False


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})
