"""Who may steer jobs: anyone on a loopback-bound dashboard, only token holders elsewhere.

Viewing is always allowed; whatever changes jobs or the store (submit, pause, resume,
reprioritize, cancel, uploads and imports) is checked here on the server for every request,
whatever the page shows.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass

TOKEN_ENV = "TUNELOOM_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server reachable from this machine only."""
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_from_env() -> str | None:
    """The control token from the ``TUNELOOM_TOKEN`` environment variable, if set."""
    value = os.environ.get(TOKEN_ENV, "").strip()
    return value or None


@dataclass(frozen=True)
class Access:
    """Access rules of one dashboard server.

    With a token, every control needs it. Without one, controls work only when the server
    is bound to a loopback address.
    """

    host: str = "127.0.0.1"
    token: str | None = None

    @property
    def needs_token(self) -> bool:
        """Whether the page should ask for a token before it offers controls."""
        return self.token is not None or not is_loopback(self.host)

    def allows(self, given: str | None) -> bool:
        """Whether a control request carrying ``given`` may act on jobs."""
        if self.token is None:
            return is_loopback(self.host)
        if not given:
            return False
        return hmac.compare_digest(given.encode(), self.token.encode())

    def refusal(self, given: str | None, what: str = "Job controls") -> str:
        """Why a request was refused, in words for the page; ``what`` names the refused
        actions (``Imports``, ...)."""
        if self.token is None:
            return (
                f"{what} are off: this dashboard is bound to {self.host}, not to a "
                f"loopback address, and was started without a token (--token or {TOKEN_ENV})."
            )
        if not given:
            return f"{what} need the access token: enter it above."
        return "The access token is not valid."
