"""Accounts: HTTP Basic authentication (account tokens and API keys), subaccounts and their
status, API keys, and auth-token rotation (Accounts v1 secondary token, promote)."""

from __future__ import annotations

import base64
import hmac
import secrets
import string
from typing import Any

from .errors import TwilioApiError, not_found
from .http import Reply, SandboxRequest
from .paging import v2010_page
from .state import ACCOUNT_SID_RE, API, Account, SandboxState, iso, logger, new_sid, rfc2822, utc_now


class AccountsApi(SandboxState):
    """Who is calling, on which account they may act, and the account resources themselves."""

    def _authenticate(self, req: SandboxRequest) -> None:
        header = req.headers.get("Authorization") or ""
        if not header.lower().startswith("basic "):
            raise TwilioApiError(401, 20003, "Authenticate")
        try:
            username, _, secret = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            raise TwilioApiError(401, 20003, "Authenticate") from None
        account, via_key = None, False
        if username.startswith("SK"):
            key = self._keys.get(username)
            if key and hmac.compare_digest(key["_secret"].encode(), secret.encode()):
                account, via_key = self._accounts.get(key["account_sid"]), True
        elif ACCOUNT_SID_RE.fullmatch(username):
            account = self._accounts.get(username)
            if account is None and self.auto_register_accounts and secret:
                account = self.register_account(username, secret)
            elif account is not None and not account.token_matches(secret):
                account = None
        if account is None or account.status != "active":
            raise TwilioApiError(401, 20003, "Authenticate")
        req.principal, req.via_key = account, via_key

    def _scoped_account(self, req: SandboxRequest) -> Account:
        """The account in the path, if the caller may act on it (the parent may act on its
        subaccounts' v2010 resources, an API key only on its own account)."""
        target = self._accounts.get(req.params["AccountSid"])
        principal = req.principal
        assert principal is not None
        if target is None or not (
            target.sid == principal.sid or (not req.via_key and target.owner_account_sid == principal.sid)
        ):
            raise not_found(req.path)
        return target

    @staticmethod
    def _require_auth_token(req: SandboxRequest, what: str) -> None:
        if req.via_key:
            raise TwilioApiError(403, 20403, f"API keys cannot manage {what}")

    @staticmethod
    def _require_active(account: Account) -> None:
        if account.status != "active":
            raise TwilioApiError(400, 10001, "Account is not active")

    # ----------------------------------------------------------------- accounts

    def _account_json(self, account: Account) -> dict[str, Any]:
        base = f"{API}/Accounts/{account.sid}"
        subresources = {
            "available_phone_numbers": "AvailablePhoneNumbers",
            "calls": "Calls",
            "incoming_phone_numbers": "IncomingPhoneNumbers",
            "keys": "Keys",
            "messages": "Messages",
        }
        return {
            "auth_token": account.auth_token,
            "date_created": rfc2822(account.date_created),
            "date_updated": rfc2822(account.date_updated),
            "friendly_name": account.friendly_name,
            "owner_account_sid": account.owner_account_sid,
            "sid": account.sid,
            "status": account.status,
            "subresource_uris": {k: f"{base}/{v}.json" for k, v in subresources.items()},
            "type": "Full",
            "uri": f"{base}.json",
        }

    def _h_list_accounts(self, req: SandboxRequest) -> Reply:
        principal = req.principal
        assert principal is not None
        visible = [
            a
            for a in self._accounts.values()
            if a.sid == principal.sid or (not req.via_key and a.owner_account_sid == principal.sid)
        ]
        name, status = req.get("FriendlyName"), req.get("Status")
        items = [
            {**self._account_json(a), "_seq": i}
            for i, a in enumerate(sorted(visible, key=lambda a: a.date_created))
            if (name is None or a.friendly_name == name) and (status is None or a.status == status)
        ]
        return v2010_page(req, "accounts", items)

    def _h_create_account(self, req: SandboxRequest) -> tuple[int, Any]:
        principal = req.principal
        assert principal is not None
        self._require_auth_token(req, "accounts")
        if principal.owner_account_sid != principal.sid:
            raise TwilioApiError(400, 21100, "Subaccounts cannot create subaccounts")
        name = req.get("FriendlyName") or f"SubAccount Created at {rfc2822(utc_now())}"
        if len(name) > 64:
            raise TwilioApiError(400, 21100, "FriendlyName must be at most 64 characters")
        account = Account(
            sid=new_sid("AC"),
            auth_token=secrets.token_hex(16),
            friendly_name=name,
            owner_account_sid=principal.sid,
        )
        self._accounts[account.sid] = account
        logger.info("Created subaccount %s (%s)", account.sid, name)
        return 201, self._account_json(account)

    def _h_fetch_account(self, req: SandboxRequest) -> tuple[int, Any]:
        return 200, self._account_json(self._scoped_account(req))

    def _h_update_account(self, req: SandboxRequest) -> tuple[int, Any]:
        account = self._scoped_account(req)
        self._require_auth_token(req, "accounts")
        name, status = req.get("FriendlyName"), req.get("Status")
        if status is not None:
            self._change_status(req, account, status)
        if name is not None:
            account.friendly_name = name
        account.date_updated = utc_now()
        return 200, self._account_json(account)

    def _change_status(self, req: SandboxRequest, account: Account, status: str) -> None:
        if status not in {"active", "suspended", "closed"}:
            raise TwilioApiError(400, 21100, f"Invalid Status: {status}")
        if account.sid == req.principal.sid:
            raise TwilioApiError(400, 21100, "An account's status can only be changed by its parent account")
        if account.twilio_suspended:
            raise TwilioApiError(400, 21478, "This account was suspended by Twilio; its status can't be changed")
        if account.status == "closed" and status != "closed":
            raise TwilioApiError(400, 21100, "A closed account cannot be reopened")
        if status == "closed" and account.status != "closed":
            self._release_account_resources(account)
        logger.info("Account %s: %s -> %s", account.sid, account.status, status)
        account.status = status

    def _release_account_resources(self, account: Account) -> None:
        """Closing releases the numbers (Twilio) and voids keys and the secondary token."""
        for sid in [s for s, n in self._numbers.items() if n["account_sid"] == account.sid]:
            self._release_number(sid)
        for sid in [s for s, k in self._keys.items() if k["account_sid"] == account.sid]:
            del self._keys[sid]
        account.secondary_auth_token = None

    # ----------------------------------------------------------------- keys

    @staticmethod
    def _key_json(key: dict[str, Any]) -> dict[str, Any]:
        return {k: key[k] for k in ("sid", "friendly_name", "date_created", "date_updated")}

    def _key_for(self, req: SandboxRequest) -> dict[str, Any]:
        account = self._scoped_account(req)
        key = self._keys.get(req.params["KeySid"])
        if key is None or key["account_sid"] != account.sid:
            raise not_found(req.path)
        return key

    def _h_list_keys(self, req: SandboxRequest) -> Reply:
        account = self._scoped_account(req)
        self._require_auth_token(req, "API keys")
        keys = [
            {**self._key_json(k), "_seq": k["_seq"]}
            for k in self._sorted(self._keys.values())
            if k["account_sid"] == account.sid
        ]
        return v2010_page(req, "keys", keys)

    def _h_create_key(self, req: SandboxRequest) -> tuple[int, Any]:
        account = self._scoped_account(req)
        self._require_auth_token(req, "API keys")
        now = rfc2822(utc_now())
        key = {
            "sid": new_sid("SK"),
            "friendly_name": req.get("FriendlyName") or "",
            "date_created": now,
            "date_updated": now,
            "account_sid": account.sid,
            "_secret": "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32)),
            "_seq": self._next_seq(),
        }
        self._keys[key["sid"]] = key
        logger.info("Created API key %s for %s", key["sid"], account.sid)
        return 201, {**self._key_json(key), "secret": key["_secret"]}

    def _h_fetch_key(self, req: SandboxRequest) -> tuple[int, Any]:
        self._require_auth_token(req, "API keys")
        return 200, self._key_json(self._key_for(req))

    def _h_update_key(self, req: SandboxRequest) -> tuple[int, Any]:
        self._require_auth_token(req, "API keys")
        key = self._key_for(req)
        if req.get("FriendlyName") is not None:
            key["friendly_name"] = req.get("FriendlyName")
            key["date_updated"] = rfc2822(utc_now())
        return 200, self._key_json(key)

    def _h_delete_key(self, req: SandboxRequest) -> tuple[int, Any]:
        self._require_auth_token(req, "API keys")
        del self._keys[self._key_for(req)["sid"]]
        return 204, None

    # ----------------------------------------------------------------- Accounts v1

    def _h_create_secondary_token(self, req: SandboxRequest) -> tuple[int, Any]:
        account = req.principal
        self._require_auth_token(req, "auth tokens")
        account.secondary_auth_token = secrets.token_hex(16)
        account.secondary_created = utc_now()
        logger.info("Secondary auth token created for %s", account.sid)
        return 201, {
            "account_sid": account.sid,
            "date_created": iso(account.secondary_created),
            "date_updated": iso(account.secondary_created),
            "secondary_auth_token": account.secondary_auth_token,
            "url": f"http://{req.host}/v1/AuthTokens/Secondary",
        }

    def _h_delete_secondary_token(self, req: SandboxRequest) -> tuple[int, Any]:
        self._require_auth_token(req, "auth tokens")
        req.principal.secondary_auth_token = None
        return 204, None

    def _h_promote_secondary_token(self, req: SandboxRequest) -> tuple[int, Any]:
        account = req.principal
        self._require_auth_token(req, "auth tokens")
        if account.secondary_auth_token is None:
            raise TwilioApiError(400, 20001, "No secondary auth token to promote")
        account.auth_token, account.secondary_auth_token = account.secondary_auth_token, None
        account.date_updated = utc_now()
        if account.sid == self.parent_account_sid:
            self._parent_token = account.auth_token
        logger.info("Secondary auth token promoted for %s", account.sid)
        return 200, {
            "account_sid": account.sid,
            "auth_token": account.auth_token,
            "date_created": iso(account.date_created),
            "date_updated": iso(account.date_updated),
            "url": f"http://{req.host}/v1/AuthTokens/Promote",
        }
