"""venue-sim's HTTP helpers shared by the REST and tx endpoints."""

from __future__ import annotations

from aiohttp import web

from shared.venue import errors as E
from shared.venue.errors import VenueError

TOO_MANY_REQUESTS = 23000


def error_response(exc: VenueError) -> web.Response:
    """Lighter's error body ``{"code", "message"}``: HTTP 429 for 23000 (too many requests,
    see ``ratelimit.py``), else HTTP 400."""
    return web.json_response(exc.to_json(), status=429 if exc.code == TOO_MANY_REQUESTS else 400)


def query_int(request: web.Request, name: str, default: int | None = None) -> int:
    """Integer query parameter ``name`` (``default`` when missing or empty).

    Raises:
        VenueError: 21501 when missing without a default, or not an integer.
    """
    raw = request.query.get(name)
    if raw is None or raw == "":
        if default is None:
            raise VenueError(E.INVALID_TX_INFO, f"missing query parameter {name}")
        return default
    try:
        return int(raw)
    except ValueError:
        raise VenueError(E.INVALID_TX_INFO, f"{name} must be an integer") from None
