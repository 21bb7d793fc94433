"""Messaging: Messages (send, with Twilio's magic test numbers, sender rules, opt-outs and
scheduling; status progression with signed status callbacks; list filters, redaction,
cancel, delete) and Messaging Services v1 with their sender pools."""

from __future__ import annotations

import re
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from .accounts import AccountsApi
from .callbacks import CallbacksApi
from .errors import ERROR_MESSAGES, TwilioApiError, not_found
from .http import Reply, SandboxRequest
from .paging import meta_page, v2010_page
from .state import (
    API,
    API_VERSION,
    E164_RE,
    MAGIC_FROM,
    Account,
    iso,
    logger,
    mask_phone,
    new_sid,
    num_segments,
    public,
    rfc2822,
    split_channel,
    truthy,
    utc_now,
)

ALPHA_SENDER_RE = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
# Synchronous magic destinations: POST Messages.json with this `To` answers HTTP 400.
SYNC_MAGIC_TO = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable via SMS."),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: +15005550003.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}
# To -> the status callbacks after acceptance: (status, error_code) in order.
ASYNC_MESSAGE_OUTCOMES: dict[str, list[tuple[str, int | None]]] = {
    "+15005550010": [("sent", None), ("undelivered", 30003)],
    "+15005550011": [("sent", None), ("undelivered", 30006)],
    "+15005550012": [("failed", 30008)],
    "+15005550013": [("sent", None), ("undelivered", 21610)],
}
IN_FLIGHT = {"accepted", "scheduled", "queued", "sending"}
# Messaging Service parameters and the attribute each sets.
MESSAGING_SERVICE_PARAMS = {
    "FriendlyName": "friendly_name",
    "InboundRequestUrl": "inbound_request_url",
    "InboundMethod": "inbound_method",
    "FallbackUrl": "fallback_url",
    "FallbackMethod": "fallback_method",
    "StatusCallback": "status_callback",
    "Usecase": "usecase",
}


def parse_date_filter(name: str, value: str) -> tuple[datetime, bool]:
    """Parse a DateSent filter: returns (moment, is_date_only)."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return datetime.fromisoformat(value).replace(tzinfo=UTC), True
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), False
    except ValueError:
        raise TwilioApiError(400, 20001, f"Invalid value for {name}: {value}") from None


class MessagingApi(AccountsApi, CallbacksApi):
    """Messages and Messaging Services of each account."""

    def messages(self) -> list[dict[str, Any]]:
        """Every stored message, newest first."""
        with self._lock:
            return [public(m) for m in self._sorted(self._messages.values(), reverse=True)]

    def _message_json(self, msg: dict[str, Any]) -> dict[str, Any]:
        data = public(msg)
        for key in ("date_created", "date_updated", "date_sent"):
            data[key] = rfc2822(msg[key])
        return data

    def _message_for(self, req: SandboxRequest) -> dict[str, Any]:
        account = self._scoped_account(req)
        msg = self._messages.get(req.params["Sid"])
        if msg is None or msg["account_sid"] != account.sid:
            raise not_found(req.path)
        return msg

    def _sender_key(self, account_sid: str, phone_number: str, service_sid: str | None) -> str:
        """Twilio's opt-out scope: the Messaging Service when the sender belongs to one."""
        if service_sid:
            return service_sid
        number = self._owner_of(phone_number)
        if number is not None and number["account_sid"] == account_sid:
            service = self._service_of_number(number["sid"])
            if service is not None:
                return service["sid"]
        return phone_number

    def _h_create_message(self, req: SandboxRequest) -> tuple[int, Any]:
        account = self._scoped_account(req)
        self._require_active(account)
        to = (req.get("To") or "").strip()
        if not to:
            raise TwilioApiError(400, 21604, "A 'To' phone number is required.")
        channel, to_number = split_channel(to)
        if to_number in SYNC_MAGIC_TO:
            raise TwilioApiError(400, *SYNC_MAGIC_TO[to_number])
        if not E164_RE.fullmatch(to_number):
            raise TwilioApiError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        body = req.get("Body") or ""
        media = req.getlist("MediaUrl")
        if not body and not media and not req.get("ContentSid"):
            raise TwilioApiError(400, 21602, "Message body is required.")
        if len(body) > 1600:
            raise TwilioApiError(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        service_sid = req.get("MessagingServiceSid")
        sender = self._resolve_sender(account, req.get("From"), service_sid, to)
        if sender == to:
            raise TwilioApiError(400, 21266, "'To' and 'From' number cannot be the same")
        opt_out_key = (account.sid, self._sender_key(account.sid, sender, service_sid), to_number)
        if opt_out_key in self._opt_outs:
            raise TwilioApiError(400, 21610, ERROR_MESSAGES[21610])
        scheduled = self._schedule_time(req, service_sid)
        status = "scheduled" if scheduled else ("accepted" if service_sid else "queued")
        callback = req.get("StatusCallback")
        if not callback and service_sid:
            callback = self._messaging_services[service_sid]["status_callback"] or None
        now = utc_now()
        sid = new_sid("SM")
        msg = {
            "account_sid": account.sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": None if service_sid and not req.get("From") else sender,
            "messaging_service_sid": service_sid,
            "num_media": str(len(media)),
            # Like Twilio: through a Messaging Service the count is only known once it is sent.
            "num_segments": "0" if service_sid else str(num_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": status,
            "subresource_uris": {"media": f"{API}/Accounts/{account.sid}/Messages/{sid}/Media.json"},
            "to": to,
            "uri": f"{API}/Accounts/{account.sid}/Messages/{sid}.json",
            "_sender": sender,
            "_segments": num_segments(body),
            "_media": media,
            "_status_callback": callback,
            "_send_at": scheduled,
            "_seq": self._next_seq(),
        }
        self._messages[sid] = msg
        logger.info("Message %s %s -> %s (%s)", sid, sender, mask_phone(to), status)
        if not scheduled:
            self._spawn(self._message_lifecycle, sid)
        return 201, self._message_json(msg)

    def _resolve_sender(self, account: Account, from_: str | None, service_sid: str | None, to: str) -> str:
        if not from_ and not service_sid:
            raise TwilioApiError(400, 21603, "A 'From' phone number is required.")
        if service_sid:
            service = self._messaging_services.get(service_sid)
            if service is None or service["account_sid"] != account.sid:
                raise TwilioApiError(400, 21701, f"The Messaging Service Sid {service_sid} is invalid.")
            if not from_:
                pool = [self._numbers[s]["phone_number"] for s in service["_numbers"]]
                if not pool:
                    raise TwilioApiError(
                        400,
                        21703,
                        "The Messaging Service does not have a phone number available to send a message",
                    )
                return pool[zlib.crc32(to.encode()) % len(pool)]  # sticky sender
        assert from_ is not None
        channel, number = split_channel(from_)
        if ALPHA_SENDER_RE.fullmatch(from_) and not channel:
            if split_channel(to)[1].startswith("+1"):
                raise TwilioApiError(400, 21612, "Alphanumeric Sender IDs cannot send to +1")
            return from_
        owned = self._owner_of(number)
        if number != MAGIC_FROM and (owned is None or owned["account_sid"] != account.sid):
            raise TwilioApiError(
                400,
                21606,
                f"The From phone number {from_} is not a valid, SMS-capable inbound phone "
                "number or short code for your account.",
            )
        return from_

    @staticmethod
    def _schedule_time(req: SandboxRequest, service_sid: str | None) -> datetime | None:
        schedule_type, send_at = req.get("ScheduleType"), req.get("SendAt")
        if not schedule_type and not send_at:
            return None
        if schedule_type != "fixed" or not send_at:
            raise TwilioApiError(400, 35111, "SendAt and ScheduleType=fixed must be used together")
        if not service_sid:
            raise TwilioApiError(400, 35118, "MessagingServiceSid is required to schedule a message")
        moment, _ = parse_date_filter("SendAt", send_at)
        if not timedelta(minutes=15) <= moment - utc_now() <= timedelta(days=35):
            raise TwilioApiError(400, 35114, "SendAt must be between 15 minutes and 35 days in the future")
        return moment

    def _message_lifecycle(self, sid: str) -> None:
        """Background status progression with signed status callbacks."""
        with self._lock:
            msg = self._messages.get(sid)
            if msg is None:
                return
            steps = list(ASYNC_MESSAGE_OUTCOMES.get(split_channel(msg["to"])[1], [("sent", None), ("delivered", None)]))
            if msg["messaging_service_sid"]:
                steps.insert(0, ("queued", None))
        for status, error_code in steps:
            if self._stopping.wait(self.callback_delay):
                return
            with self._lock:
                msg = self._messages.get(sid)
                if msg is None:
                    return
                self._set_message_status(msg, status, error_code)
                url = msg["_status_callback"]
                params = self._message_callback_params(msg)
                token = self._accounts[msg["account_sid"]].auth_token
            if url:
                self._deliver_webhook("message-status", url, params, token)

    def _set_message_status(self, msg: dict[str, Any], status: str, error: int | None) -> None:
        now = utc_now()
        msg["status"] = status
        msg["date_updated"] = now
        msg["from"] = msg["_sender"]
        if status != "queued":  # past the Messaging Service's queue: the body has been split
            msg["num_segments"] = str(msg["_segments"])
        if status == "sent":
            msg["date_sent"] = now
            msg["price"] = f"-{0.0079 * msg['_segments']:.5f}"
        if error is not None:
            msg["error_code"] = error
            msg["error_message"] = ERROR_MESSAGES.get(error)
            if error == 21610:
                self._opt_outs.add(
                    (
                        msg["account_sid"],
                        self._sender_key(msg["account_sid"], msg["_sender"], msg["messaging_service_sid"]),
                        split_channel(msg["to"])[1],
                    )
                )

    @staticmethod
    def _message_callback_params(msg: dict[str, Any]) -> dict[str, str]:
        params = {
            "AccountSid": msg["account_sid"],
            "ApiVersion": API_VERSION,
            "From": msg["_sender"],
            "To": msg["to"],
            "MessageSid": msg["sid"],
            "SmsSid": msg["sid"],
            "MessageStatus": msg["status"],
            "SmsStatus": msg["status"],
        }
        if msg["messaging_service_sid"]:
            params["MessagingServiceSid"] = msg["messaging_service_sid"]
        if msg["error_code"] is not None:
            params["ErrorCode"] = str(msg["error_code"])
        if msg["status"] in {"delivered", "undelivered"}:
            params["RawDlrDoneDate"] = msg["date_updated"].strftime("%y%m%d%H%M")
        return params

    def _message_filter(self, req: SandboxRequest) -> Any:
        to, from_ = req.get("To"), req.get("From")
        bounds = []
        for name in ("DateSent", "DateSent>", "DateSent<"):
            value = req.get(name)
            if value:
                bounds.append((name, *parse_date_filter(name, value)))

        def keep(msg: dict[str, Any]) -> bool:
            if (to and msg["to"] != to) or (from_ and msg["from"] != from_):
                return False
            sent = msg["date_sent"] or msg["date_created"]
            for name, moment, date_only in bounds:
                if name == "DateSent" and sent.date() != moment.date():
                    return False
                if name == "DateSent>" and sent < moment:
                    return False
                if name == "DateSent<" and (sent >= moment + timedelta(days=1) if date_only else sent > moment):
                    return False
            return True

        return keep

    def _h_list_messages(self, req: SandboxRequest) -> Reply:
        account = self._scoped_account(req)
        keep = self._message_filter(req)
        items = [
            {**self._message_json(m), "_seq": m["_seq"]}
            for m in self._sorted(self._messages.values(), reverse=True)
            if m["account_sid"] == account.sid and keep(m)
        ]
        return v2010_page(req, "messages", items)

    def _h_fetch_message(self, req: SandboxRequest) -> tuple[int, Any]:
        return 200, self._message_json(self._message_for(req))

    def _h_update_message(self, req: SandboxRequest) -> tuple[int, Any]:
        msg = self._message_for(req)
        body, status = req.get("Body"), req.get("Status")
        if body is not None:
            if body != "":
                raise TwilioApiError(400, 20001, "Body can only be redacted (set to '')")
            msg["body"] = ""  # Twilio's redaction
        if status is not None:
            if status != "canceled" or msg["status"] != "scheduled":
                raise TwilioApiError(400, 20001, "Only scheduled messages can be canceled")
            msg["status"] = "canceled"
        msg["date_updated"] = utc_now()
        return 200, self._message_json(msg)

    def _h_delete_message(self, req: SandboxRequest) -> tuple[int, Any]:
        msg = self._message_for(req)
        if msg["status"] in IN_FLIGHT - {"scheduled"}:
            raise TwilioApiError(400, 20009, "Cannot delete message because delivery has not been completed")
        del self._messages[msg["sid"]]
        return 204, None

    # --- Messaging Services (v1)

    def _messaging_url(self, req: SandboxRequest, path: str) -> str:
        return f"http://{req.host}/v1/{path}"

    def _messaging_service_for(self, req: SandboxRequest) -> dict[str, Any]:
        service = self._messaging_services.get(req.params["ServiceSid"])
        if service is None or service["account_sid"] != req.principal.sid:
            raise not_found(req.path)
        return service

    def _messaging_service_json(self, service: dict[str, Any]) -> dict[str, Any]:
        data = public(service)
        data["date_created"], data["date_updated"] = (
            iso(service["date_created"]),
            iso(service["date_updated"]),
        )
        return data

    def _apply_messaging_fields(self, service: dict[str, Any], req: SandboxRequest) -> None:
        for param, attr in MESSAGING_SERVICE_PARAMS.items():
            if req.get(param) is not None:
                service[attr] = req.get(param)
        for param, attr in (
            ("UseInboundWebhookOnNumber", "use_inbound_webhook_on_number"),
            ("StickySender", "sticky_sender"),
            ("SmartEncoding", "smart_encoding"),
        ):
            if req.get(param) is not None:
                service[attr] = truthy(req.get(param))
        if req.get("ValidityPeriod"):
            service["validity_period"] = int(req.get("ValidityPeriod"))
        service["date_updated"] = utc_now()

    def _h_list_messaging_services(self, req: SandboxRequest) -> Reply:
        items = [
            {**self._messaging_service_json(s), "_seq": s["_seq"]}
            for s in self._sorted(self._messaging_services.values())
            if s["account_sid"] == req.principal.sid
        ]
        return meta_page(req, "services", items)

    def _h_create_messaging_service(self, req: SandboxRequest) -> tuple[int, Any]:
        if not req.get("FriendlyName"):
            raise TwilioApiError(400, 21100, "FriendlyName is required")
        sid, now = new_sid("MG"), utc_now()
        url = self._messaging_url(req, f"Services/{sid}")
        service = {
            "sid": sid,
            "account_sid": req.principal.sid,
            "friendly_name": "",
            "date_created": now,
            "date_updated": now,
            "inbound_request_url": None,
            "inbound_method": "POST",
            "fallback_url": None,
            "fallback_method": "POST",
            "status_callback": None,
            "sticky_sender": True,
            "mms_converter": True,
            "smart_encoding": True,
            "scan_message_content": "inherit",
            "fallback_to_long_code": True,
            "area_code_geomatch": True,
            "synchronous_validation": False,
            "validity_period": 14400,
            "url": url,
            "links": {
                "phone_numbers": f"{url}/PhoneNumbers",
                "short_codes": f"{url}/ShortCodes",
                "alpha_senders": f"{url}/AlphaSenders",
            },
            "usecase": "undeclared",
            "us_app_to_person_registered": False,
            "use_inbound_webhook_on_number": False,
            "_numbers": [],
            "_seq": self._next_seq(),
        }
        self._apply_messaging_fields(service, req)
        self._messaging_services[sid] = service
        return 201, self._messaging_service_json(service)

    def _h_fetch_messaging_service(self, req: SandboxRequest) -> tuple[int, Any]:
        return 200, self._messaging_service_json(self._messaging_service_for(req))

    def _h_update_messaging_service(self, req: SandboxRequest) -> tuple[int, Any]:
        service = self._messaging_service_for(req)
        self._apply_messaging_fields(service, req)
        return 200, self._messaging_service_json(service)

    def _h_delete_messaging_service(self, req: SandboxRequest) -> tuple[int, Any]:
        del self._messaging_services[self._messaging_service_for(req)["sid"]]
        return 204, None

    def _service_number_json(self, req: SandboxRequest, service: dict[str, Any], number: dict[str, Any]):
        return {
            "sid": number["sid"],
            "account_sid": number["account_sid"],
            "service_sid": service["sid"],
            "date_created": iso(service["date_updated"]),
            "date_updated": iso(service["date_updated"]),
            "phone_number": number["phone_number"],
            "country_code": "US",
            "capabilities": ["SMS", "MMS", "Voice"],
            "url": self._messaging_url(req, f"Services/{service['sid']}/PhoneNumbers/{number['sid']}"),
        }

    def _h_list_service_numbers(self, req: SandboxRequest) -> Reply:
        service = self._messaging_service_for(req)
        items = [
            {**self._service_number_json(req, service, self._numbers[sid]), "_seq": i}
            for i, sid in enumerate(service["_numbers"])
        ]
        return meta_page(req, "phone_numbers", items)

    def _h_add_service_number(self, req: SandboxRequest) -> tuple[int, Any]:
        service = self._messaging_service_for(req)
        number = self._numbers.get(req.get("PhoneNumberSid") or "")
        if number is None or number["account_sid"] != service["account_sid"]:
            raise TwilioApiError(400, 21100, "PhoneNumberSid is not a number of this account")
        owner = self._service_of_number(number["sid"])
        if owner is not None:
            raise TwilioApiError(409, 21710, f"Phone Number is already in the Messaging Service {owner['sid']}")
        service["_numbers"].append(number["sid"])
        return 201, self._service_number_json(req, service, number)

    def _service_number_for(self, req: SandboxRequest) -> tuple[dict[str, Any], dict[str, Any]]:
        service = self._messaging_service_for(req)
        if req.params["Sid"] not in service["_numbers"]:
            raise not_found(req.path)
        return service, self._numbers[req.params["Sid"]]

    def _h_fetch_service_number(self, req: SandboxRequest) -> tuple[int, Any]:
        service, number = self._service_number_for(req)
        return 200, self._service_number_json(req, service, number)

    def _h_remove_service_number(self, req: SandboxRequest) -> tuple[int, Any]:
        service, number = self._service_number_for(req)
        service["_numbers"].remove(number["sid"])
        return 204, None
