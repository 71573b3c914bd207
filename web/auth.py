"""Who may do what, when the server has keys (``qa serve --keys FILE``; see web/keys.py).

Every ``/api/*`` request and ``/metrics`` needs ``Authorization: Bearer KEY``: 401 without a valid
key, 403 when its scope does not allow the operation (``read``: ask, list, show, feedback,
metrics; ``write``: also upload and delete). The pages are for browsers, which cannot add that
header to a link or a plain form: the chat asks for the key once per browser session, keeps it in
``sessionStorage`` for its API calls, and ``POST /api/session`` (with the key) sets an HttpOnly,
SameSite=Strict session cookie holding it, which the pages that show documents or change them
(``/?q=``, ``/doc/…``, ``/documents``) accept; the API itself never does. The chat page's shell,
``/healthz``, ``/docs``, ``/openapi.json`` and ``/static`` stay open. A key is never logged.
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from web.keys import Key, KeyRing, Scope

COOKIE = "citeqa_key"
router = APIRouter(tags=["api"])


def required_scope(method: str, path: str, query: bytes = b"") -> Scope | None:
    """The scope a request needs, or None for what stays open."""
    if path.startswith("/api/") or path == "/metrics":
        if (method == "POST" and path == "/api/documents") or (method == "DELETE" and path.startswith("/api/documents/")):
            return "write"
        return "read"
    if method == "POST" and path in ("/documents", "/documents/delete"):
        return "write"
    if path == "/documents" or path.startswith("/doc/"):
        return "read"
    if path == "/" and method == "GET" and "q" in parse_qs(query.decode("latin-1")):
        return "read"
    return None


def _presented(headers: dict[bytes, bytes], page: bool) -> str | None:
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    if page and b"cookie" in headers:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(headers[b"cookie"].decode("latin-1"))
        except Exception:  # noqa: BLE001 - a malformed cookie header is no key
            return None
        if COOKIE in jar and jar[COOKIE].value:
            return jar[COOKIE].value
    return None


class KeyCheck:
    """ASGI middleware: identify the caller's key (``request.state.key``) and refuse what it may not do."""

    def __init__(self, app: Any, ring: KeyRing | None) -> None:
        self.app, self.ring = app, ring

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.ring is None:
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        need = required_scope(method, path, scope.get("query_string", b""))
        page = not (path.startswith("/api/") or path == "/metrics")
        presented = _presented(dict(scope.get("headers") or []), page)
        key = self.ring.check(presented) if presented is not None else None
        scope.setdefault("state", {})["key"] = key
        if need is not None and key is None:
            why = ("this server needs an API key: send Authorization: Bearer KEY" if presented is None
                   else "the API key is not valid (unknown or removed)")
            if page:
                why = f"{why}; open the chat (/) and enter your key"
            await _refuse(scope, receive, send,
                          HTTPException(401, why, headers={"WWW-Authenticate": 'Bearer realm="citeqa"'}))
            return
        if need is not None and key is not None and not key.allows(need):
            await _refuse(scope, receive, send, HTTPException(
                403, f"the key {key.name!r} has the {key.scope} scope; this needs a {need} key"))
            return
        await self.app(scope, receive, send)


async def _refuse(scope: dict[str, Any], receive: Any, send: Any, exc: HTTPException) -> None:
    """The app's own one-line error (JSON for the API, a page for browsers) for ``exc``."""
    from web.errors import error_response

    request = Request(scope, receive)
    resp = error_response(request, exc.status_code, str(exc.detail))
    resp.headers.update(exc.headers or {})
    await resp(scope, receive, send)


def caller(request: Request) -> Key | None:
    """The key the request came with (None: no keys configured, or an open page without one)."""
    key: Key | None = getattr(request.state, "key", None)
    return key


def keys_required(request: Request) -> bool:
    return getattr(request.app.state, "keys", None) is not None


class SessionOut(BaseModel):
    keys: bool = Field(description="whether this server requires keys")
    name: str | None = Field(description="the key's name (null without keys)")
    scope: Scope = Field(description="what the key allows: read, or write (everything, without keys)")


@router.post("/api/session", response_model=SessionOut, summary="Check a key; for the pages, keep it in a session cookie",
             responses={401: {"description": "no valid key"}})
def api_session(request: Request, response: Response) -> SessionOut:
    key = caller(request)
    if not keys_required(request):
        return SessionOut(keys=False, name=None, scope="write")
    if key is None:  # the middleware refuses it first; kept for a route reached another way
        raise HTTPException(401, "this server needs an API key: send Authorization: Bearer KEY")
    presented = _presented({b"authorization": request.headers.get("authorization", "").encode("latin-1")}, False)
    # No Max-Age: the cookie ends with the browser session, as the key in sessionStorage does.
    response.set_cookie(COOKIE, presented or "", httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
    return SessionOut(keys=True, name=key.name, scope=key.scope)


def document_keys(app: Any) -> None:
    """With keys, the published schema says so: a bearer scheme, on every operation that needs a key,
    with its 401 (and 403 for the operations a read key may not do)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return dict(app.openapi_schema)
        spec = plain()
        spec.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
            "type": "http", "scheme": "bearer", "description": "an API key of `qa keys add` (read or write scope)"}
        for path, methods in spec.get("paths", {}).items():
            for method, op in methods.items():
                need = required_scope(method.upper(), path)
                if need is None:
                    continue
                op["security"] = [{"bearer": []}]
                op.setdefault("responses", {})["401"] = {"description": "no valid key", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
                if need == "write":
                    before = op["responses"].get("403", {}).get("description")
                    why = "a read key: this needs a write key"
                    op["responses"]["403"] = {"description": f"{before}; or {why}" if before else why, "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
        app.openapi_schema = spec
        return spec

    app.openapi = openapi
