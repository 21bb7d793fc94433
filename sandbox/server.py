"""`TwilioSandbox`: the whole stand-in, every product's API over one in-memory state, served
over HTTP for the real SDK (see the package docstring for what it reproduces)."""

from __future__ import annotations

from .control import ControlApi
from .http import HttpDispatch
from .recordings import RecordingsApi


class TwilioSandbox(ControlApi, RecordingsApi, HttpDispatch):
    """Each product module adds its handlers (`_h_<route handler>`) and lookups to one state;
    `HttpDispatch` serves HTTP and routes requests to them."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        parent_account_sid: str,
        parent_auth_token: str,
        callback_delay: float = 0.2,
        auto_register_accounts: bool = True,
    ):
        super().__init__(
            parent_account_sid=parent_account_sid,
            parent_auth_token=parent_auth_token,
            callback_delay=callback_delay,
            auto_register_accounts=auto_register_accounts,
        )
        self._serve_on(host, port)
