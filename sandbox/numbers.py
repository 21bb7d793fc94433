"""Phone numbers: IncomingPhoneNumbers (provision, webhooks, transfer between subaccounts,
release) and AvailablePhoneNumbers (plausible, valid US numbers nobody owns yet)."""

from __future__ import annotations

import random
from typing import Any

from .accounts import AccountsApi
from .errors import TwilioApiError, not_found
from .http import Reply, SandboxRequest
from .paging import page_window, v2010_page
from .state import (
    API,
    API_VERSION,
    AREA_CODE_RE,
    E164_RE,
    TOLL_FREE_PREFIXES,
    Account,
    format_phone,
    is_valid_number,
    logger,
    new_sid,
    public,
    rfc2822,
    utc_now,
)

# An IncomingPhoneNumber's writable parameters and the attribute each sets.
NUMBER_PARAMS = {
    "FriendlyName": "friendly_name",
    "SmsUrl": "sms_url",
    "SmsMethod": "sms_method",
    "SmsFallbackUrl": "sms_fallback_url",
    "SmsFallbackMethod": "sms_fallback_method",
    "VoiceUrl": "voice_url",
    "VoiceMethod": "voice_method",
    "VoiceFallbackUrl": "voice_fallback_url",
    "VoiceFallbackMethod": "voice_fallback_method",
    "StatusCallback": "status_callback",
    "StatusCallbackMethod": "status_callback_method",
}


class NumbersApi(AccountsApi):
    """The numbers each account owns, and the numbers it could buy."""

    def seed_number(self, account_sid: str, phone_number: str | None = None, **fields: str):
        """Give an account a number (kwargs are IncomingPhoneNumber params, e.g. SmsUrl)."""
        with self._lock:
            account = self._accounts.get(account_sid) or self.register_account(account_sid)
            number = phone_number or self._generate_numbers("415", "Local", 1)[0]
            return public(self._provision_number(account, number, fields))

    def _provision_number(self, account: Account, phone_number: str, fields: dict[str, str]) -> dict[str, Any]:
        if self._owner_of(phone_number) is not None:
            raise TwilioApiError(400, 21422, f"PhoneNumber {phone_number} is not available")
        now = rfc2822(utc_now())
        sid = new_sid("PN")
        toll_free = phone_number[2:5] in TOLL_FREE_PREFIXES or phone_number[2:5] == "800"
        number = {
            "account_sid": account.sid,
            "address_sid": None,
            "address_requirements": "none",
            "api_version": API_VERSION,
            "beta": False,
            "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "date_created": now,
            "date_updated": now,
            "friendly_name": format_phone(phone_number),
            "identity_sid": None,
            "phone_number": phone_number,
            "origin": "twilio",
            "sid": sid,
            "sms_application_sid": None,
            "sms_fallback_method": "POST",
            "sms_fallback_url": "",
            "sms_method": "POST",
            "sms_url": "",
            "status_callback": "",
            "status_callback_method": "POST",
            "trunk_sid": None,
            "uri": f"{API}/Accounts/{account.sid}/IncomingPhoneNumbers/{sid}.json",
            "voice_receive_mode": "voice",
            "voice_application_sid": None,
            "voice_caller_id_lookup": False,
            "voice_fallback_method": "POST",
            # Unset, Twilio answers "" for the SMS URLs and status callback but null for these.
            "voice_fallback_url": None,
            "voice_method": "POST",
            "voice_url": None,
            "emergency_status": "Inactive",
            "emergency_address_sid": None,
            "emergency_address_status": "unregistered",
            "bundle_sid": None,
            "status": "in-use",
            "type": "toll-free" if toll_free else "local",
            "subresource_uris": {
                "assigned_add_ons": f"{API}/Accounts/{account.sid}/IncomingPhoneNumbers/{sid}/AssignedAddOns.json"
            },
            "_seq": self._next_seq(),
        }
        self._apply_number_fields(number, fields)
        self._numbers[sid] = number
        logger.info("Number %s provisioned to %s", phone_number, account.sid)
        return number

    def _apply_number_fields(self, number: dict[str, Any], fields: dict[str, Any]) -> None:
        for param, attr in NUMBER_PARAMS.items():
            value = fields.get(param)
            if value is None:
                continue
            if attr.endswith("_method") and value.upper() not in {"GET", "POST"}:
                raise TwilioApiError(400, 21100, f"{param} must be GET or POST")
            number[attr] = value.upper() if attr.endswith("_method") else value
        number["date_updated"] = rfc2822(utc_now())

    def _number_for(self, req: SandboxRequest) -> dict[str, Any]:
        account = self._scoped_account(req)
        number = self._numbers.get(req.params["Sid"])
        if number is None or number["account_sid"] != account.sid:
            raise not_found(req.path)
        return number

    def _h_list_numbers(self, req: SandboxRequest) -> Reply:
        account = self._scoped_account(req)
        pattern = (req.get("PhoneNumber") or "").strip()
        name = req.get("FriendlyName")
        items = [
            n
            for n in self._sorted(self._numbers.values())
            if n["account_sid"] == account.sid
            and pattern in n["phone_number"]
            and (name is None or n["friendly_name"] == name)
        ]
        return v2010_page(req, "incoming_phone_numbers", items)

    def _h_create_number(self, req: SandboxRequest) -> tuple[int, Any]:
        account = self._scoped_account(req)
        self._require_active(account)
        phone_number, area_code = req.get("PhoneNumber"), req.get("AreaCode")
        if phone_number:
            if phone_number == "+15005550000" or not E164_RE.fullmatch(phone_number):
                code = 21422 if phone_number == "+15005550000" else 21421
                raise TwilioApiError(400, code, f"PhoneNumber {phone_number} is not available")
        elif area_code:
            if not AREA_CODE_RE.fullmatch(area_code):
                raise TwilioApiError(400, 21451, f"AreaCode {area_code} is invalid")
            found = self._generate_numbers(area_code, "Local", 1)
            if not found:
                raise TwilioApiError(400, 21452, f"No phone numbers found in area code {area_code}")
            phone_number = found[0]
        else:
            raise TwilioApiError(400, 21421, "A PhoneNumber or AreaCode is required")
        fields = {k: req.get(k) for k in NUMBER_PARAMS}
        return 201, public(self._provision_number(account, phone_number, fields))

    def _h_fetch_number(self, req: SandboxRequest) -> tuple[int, Any]:
        return 200, public(self._number_for(req))

    def _h_update_number(self, req: SandboxRequest) -> tuple[int, Any]:
        number = self._number_for(req)
        self._apply_number_fields(number, {k: req.get(k) for k in NUMBER_PARAMS})
        new_owner = req.get("AccountSid")
        if new_owner and new_owner != number["account_sid"]:
            # Twilio lets the parent move a number between its subaccounts.
            target = self._accounts.get(new_owner)
            principal = req.principal
            if req.via_key or target is None or target.owner_account_sid != principal.sid:
                raise TwilioApiError(400, 21100, f"Cannot transfer the number to {new_owner}")
            for service in self._messaging_services.values():
                if number["sid"] in service["_numbers"]:
                    service["_numbers"].remove(number["sid"])
            number["account_sid"] = new_owner
            number["uri"] = f"{API}/Accounts/{new_owner}/IncomingPhoneNumbers/{number['sid']}.json"
        return 200, public(number)

    def _h_delete_number(self, req: SandboxRequest) -> tuple[int, Any]:
        self._release_number(self._number_for(req)["sid"])
        return 204, None

    def _generate_numbers(self, area_code: str, kind: str, count: int) -> list[str]:
        """Plausible, phonenumbers-valid US numbers that no account owns yet."""
        rng = random.Random(f"{kind}:{area_code}")
        owned = {n["phone_number"] for n in self._numbers.values()}
        found: list[str] = []
        for _ in range(count * 50):
            if len(found) >= count:
                break
            prefix = area_code if kind != "TollFree" else rng.choice(TOLL_FREE_PREFIXES)
            exchange = rng.randint(200, 999)
            if exchange in {555, 911} or exchange % 100 == 11:
                continue
            candidate = f"+1{prefix}{exchange}{rng.randint(0, 9999):04d}"
            if candidate not in owned and candidate not in found and is_valid_number(candidate):
                found.append(candidate)
        return found

    def _h_available_numbers(self, req: SandboxRequest) -> tuple[int, Any]:
        self._scoped_account(req)
        country, kind = req.params["Country"], req.params["Kind"]
        if country not in {"US", "CA"} or kind not in {"Local", "TollFree", "Mobile"}:
            raise not_found(req.path)
        area_code = req.get("AreaCode")
        if area_code and not AREA_CODE_RE.fullmatch(area_code):
            raise TwilioApiError(400, 21451, f"AreaCode {area_code} is invalid")
        if kind == "TollFree" and area_code and area_code not in TOLL_FREE_PREFIXES:
            area_code = None
        _, size = page_window(req, default_size=30)
        numbers = self._generate_numbers(area_code or "415", kind, min(size, 100))
        if kind == "TollFree" and area_code:
            numbers = [n for n in numbers if n[2:5] == area_code]
        contains = (req.get("Contains") or "").strip("*")
        if contains.isdigit():
            numbers = [n for n in numbers if contains in n]
        items = [
            {
                "friendly_name": format_phone(n),
                "phone_number": n,
                "lata": "722",
                "locality": "San Francisco" if kind != "TollFree" else None,
                "rate_center": "SNFC CNTRL" if kind != "TollFree" else None,
                "latitude": "37.774900" if kind != "TollFree" else None,
                "longitude": "-122.419400" if kind != "TollFree" else None,
                "region": "CA" if kind != "TollFree" else None,
                "postal_code": "94103" if kind != "TollFree" else None,
                "iso_country": country,
                "address_requirements": "none",
                "beta": False,
                "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            }
            for n in numbers
        ]
        return 200, {"available_phone_numbers": items, "uri": req.path}
