"""The ONE place that builds Twilio clients, and the one exception type Twilio errors become.

Everything else asks `tenant_client(tenant)` (or `parent_client()` for subaccount
administration) and catches `TwilioError`. `TWILIO_API_BASE_URL` sends every SDK request,
for every Twilio domain (api, accounts, messaging, verify, ...), to one base URL instead: the
local sandbox in development and tests, a Prism mock in the contract test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.base.version import Version
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from .twilio_errors import explain, is_retryable, maybe_sent_http, maybe_sent_transport


class TwilioError(Exception):
    """A failed Twilio call: its Twilio code, HTTP status, retry advice and a human explanation.

    `maybe_sent` says whether the request may have reached Twilio and been acted on (a timeout
    after it left, a connection reset mid-answer, a 5xx): a caller that creates something must
    look at Twilio before repeating it. False means it certainly did not (connection refused,
    DNS failure, a 4xx/429 answer), so repeating it is safe without a lookup.
    """

    def __init__(
        self, *, code: int | None, status: int | None, retryable: bool, message: str, maybe_sent: bool = False
    ) -> None:
        self.code = code
        self.status = status
        self.retryable = retryable
        self.maybe_sent = maybe_sent
        self.message = message
        self.explanation = explain(code) if code else message
        super().__init__(self.__str__())

    def __str__(self) -> str:
        label = f"Twilio error {self.code}" if self.code else "Twilio unreachable"
        return f"{label}: {self.explanation}"

    @classmethod
    def from_exception(cls, exc: BaseException) -> TwilioError:
        if type(exc) is TwilioException and len(exc.args) == 2 and isinstance(exc.args[1], Response):
            # List/page fetches raise a bare TwilioException("Unable to fetch page", response):
            # read its error body as the SDK does for every other call, or 429/5xx on a list
            # would look like a non-retryable unknown failure.
            exc = Version.exception("GET", "", exc.args[1], str(exc.args[0]))
        if isinstance(exc, TwilioRestException | TwilioServiceException):
            status = getattr(exc, "status", None)
            raw_code = getattr(exc, "code", None) or status
            try:
                code = int(raw_code) if raw_code is not None else None
            except (TypeError, ValueError):
                code = None
            message = getattr(exc, "msg", None) or getattr(exc, "detail", None) or getattr(exc, "title", "")
            return cls(
                code=code,
                status=status,
                retryable=is_retryable(code, status),
                message=str(message),
                maybe_sent=maybe_sent_http(status),
            )
        if isinstance(exc, requests.RequestException):
            # Transport failures are worth retrying; whether Twilio may have acted depends on
            # whether the request left (see `maybe_sent_transport`).
            return cls(
                code=None,
                status=None,
                retryable=True,
                message=f"{type(exc).__name__}: {exc}",
                maybe_sent=maybe_sent_transport(exc),
            )
        return cls(code=None, status=None, retryable=False, message=str(exc))


@contextlib.contextmanager
def twilio_errors() -> Iterator[None]:
    """Turn every Twilio SDK or transport failure inside the block into `TwilioError`."""
    try:
        yield
    except (TwilioException, requests.RequestException) as exc:
        raise TwilioError.from_exception(exc) from exc


class BaseUrlHttpClient(TwilioHttpClient):
    """Sends every request to `base_url`, keeping path and query (Twilio's documented way
    to point the SDK at a mock server)."""

    def __init__(self, base_url: str, **kwargs) -> None:
        super().__init__(**kwargs)
        parts = urlsplit(base_url)
        self._scheme, self._netloc, self._prefix = parts.scheme, parts.netloc, parts.path.rstrip("/")

    def request(
        self, method, url, params=None, data=None, headers=None, auth=None, timeout=None, allow_redirects=False
    ):
        parts = urlsplit(url)
        url = urlunsplit((self._scheme, self._netloc, self._prefix + parts.path, parts.query, ""))
        return super().request(method, url, params, data, headers, auth, timeout, allow_redirects)


def _http_client() -> TwilioHttpClient:
    if settings.TWILIO_API_BASE_URL:
        return BaseUrlHttpClient(settings.TWILIO_API_BASE_URL, timeout=settings.TWILIO_HTTP_TIMEOUT)
    return TwilioHttpClient(timeout=settings.TWILIO_HTTP_TIMEOUT)


def tenant_client(tenant) -> Client:
    """A client acting as the tenant's subaccount: its API key when set, else its auth token."""
    if tenant.api_key_sid and tenant.api_key_secret:
        return Client(
            tenant.api_key_sid,
            tenant.api_key_secret.reveal(),
            account_sid=tenant.account_sid,
            http_client=_http_client(),
        )
    return Client(tenant.account_sid, tenant.auth_token.reveal(), http_client=_http_client())


def parent_client() -> Client:
    """The platform's parent account, which creates and manages subaccounts."""
    if not (settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN):
        raise TwilioError(
            code=None,
            status=None,
            retryable=False,
            message="TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (the parent account) are not configured",
        )
    return Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=_http_client())


def credentials_client(*, account_sid: str, username: str, password: str) -> Client:
    """A client for explicit credentials of `account_sid`: its auth token (username = the
    account SID) or an API key (username = SK…). Credential rotation uses it to manage keys and
    auth tokens (a standard API key may not) and to prove a new credential works before the
    portal switches to it."""
    return Client(username, password, account_sid=account_sid, http_client=_http_client())


def tenant_auth_token_client(tenant) -> Client:
    """A client authenticated with the tenant's primary auth token, never its API key."""
    return credentials_client(
        account_sid=tenant.account_sid, username=tenant.account_sid, password=tenant.auth_token.reveal()
    )


def tenant_media_get(tenant, path: str, *, headers: dict[str, str] | None = None) -> requests.Response:
    """GET a media resource of the tenant's account (a recording's audio), streamed, with the
    same credentials as `tenant_client` and to the same base URL. `path` starts at the API
    version (`/2010-04-01/Accounts/AC…/Recordings/RE….mp3`). The caller closes the response.

    Twilio's media URLs need the account's credentials, so a browser never gets them: the
    portal fetches and streams (forwarding `Range`, so a player can seek)."""
    if tenant.api_key_sid and tenant.api_key_secret:
        auth = (tenant.api_key_sid, tenant.api_key_secret.reveal())
    else:
        auth = (tenant.account_sid, tenant.auth_token.reveal())
    base = (settings.TWILIO_API_BASE_URL or "https://api.twilio.com").rstrip("/")
    with twilio_errors():
        return requests.get(
            base + path, auth=auth, headers=headers or {}, stream=True, timeout=settings.TWILIO_HTTP_TIMEOUT
        )


def twilio_each(ids, action) -> tuple[int, list[tuple[str, TwilioError]]]:
    """Run `action(id)` (one Twilio request) for each id: (done, failures as (id, error)).

    A 404 counts as done: what the action removes or redacts is already gone at Twilio. Used
    by retention and erasure, which act on many resources and must not stop at one failure."""
    done, failures = 0, []
    for item in ids:
        try:
            with twilio_errors():
                action(item)
            done += 1
        except TwilioError as exc:
            if exc.status == 404:
                done += 1
            else:
                failures.append((item, exc))
    return done, failures
