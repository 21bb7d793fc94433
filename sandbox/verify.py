"""Verify v2: Services, Verifications (codes that expire after 10 minutes, at most 5 sends to
one number within 10 minutes, 60203 beyond) and VerificationCheck (5 wrong checks, then 60202).
The codes are not sent anywhere: read them with `verify_codes()` or GET /sandbox/verify-codes."""

from __future__ import annotations

import hmac
import secrets
import string
from collections import deque
from datetime import timedelta
from typing import Any

from .accounts import AccountsApi
from .errors import TwilioApiError, not_found
from .http import Reply, SandboxRequest
from .paging import meta_page
from .state import E164_RE, iso, logger, mask_phone, new_sid, public, utc_now

VERIFY_TTL = timedelta(minutes=10)
VERIFY_MAX_CHECKS = 5
VERIFY_MAX_SENDS = 5


class VerifyApi(AccountsApi):
    """Verify services and verifications of each account."""

    def verify_codes(self, to: str | None = None) -> list[dict[str, Any]]:
        """Issued codes (all, or to one address), newest first."""
        with self._lock:
            codes = [c for c in self._verify_codes if to is None or c["to"] == to]
            return [dict(c) for c in reversed(codes)]

    def _verify_url(self, req: SandboxRequest, path: str) -> str:
        return f"http://{req.host}/v2/{path}"

    def _verify_service_for(self, req: SandboxRequest) -> dict[str, Any]:
        service = self._verify_services.get(req.params["ServiceSid"])
        if service is None or service["account_sid"] != req.principal.sid:
            raise not_found(req.path)
        return service

    def _verify_service_json(self, service: dict[str, Any]) -> dict[str, Any]:
        data = public(service)
        data["date_created"], data["date_updated"] = (
            iso(service["date_created"]),
            iso(service["date_updated"]),
        )
        return data

    def _h_list_verify_services(self, req: SandboxRequest) -> Reply:
        items = [
            {**self._verify_service_json(s), "_seq": s["_seq"]}
            for s in self._sorted(self._verify_services.values())
            if s["account_sid"] == req.principal.sid
        ]
        return meta_page(req, "services", items)

    def _h_create_verify_service(self, req: SandboxRequest) -> tuple[int, Any]:
        name = req.get("FriendlyName")
        if not name:
            raise TwilioApiError(400, 60200, "Invalid parameter: FriendlyName")
        code_length = int(req.get("CodeLength") or 6)
        if not 4 <= code_length <= 10:
            raise TwilioApiError(400, 60200, "Invalid parameter: CodeLength")
        sid, now = new_sid("VA"), utc_now()
        service = {
            "sid": sid,
            "account_sid": req.principal.sid,
            "friendly_name": name,
            "code_length": code_length,
            "lookup_enabled": False,
            "psd2_enabled": False,
            "skip_sms_to_landlines": False,
            "dtmf_input_required": True,
            "tts_name": None,
            "do_not_share_warning_enabled": False,
            "custom_code_enabled": False,
            "push": {},
            "totp": {},
            "default_template_sid": None,
            "whatsapp": {},
            "passkeys": {},
            "verify_event_subscription_enabled": False,
            "date_created": now,
            "date_updated": now,
            "url": self._verify_url(req, f"Services/{sid}"),
            "links": {
                "verification_checks": self._verify_url(req, f"Services/{sid}/VerificationCheck"),
                "verifications": self._verify_url(req, f"Services/{sid}/Verifications"),
            },
            "_seq": self._next_seq(),
        }
        self._verify_services[sid] = service
        return 201, self._verify_service_json(service)

    def _h_fetch_verify_service(self, req: SandboxRequest) -> tuple[int, Any]:
        return 200, self._verify_service_json(self._verify_service_for(req))

    def _h_update_verify_service(self, req: SandboxRequest) -> tuple[int, Any]:
        service = self._verify_service_for(req)
        if req.get("FriendlyName"):
            service["friendly_name"] = req.get("FriendlyName")
        service["date_updated"] = utc_now()
        return 200, self._verify_service_json(service)

    def _h_delete_verify_service(self, req: SandboxRequest) -> tuple[int, Any]:
        del self._verify_services[self._verify_service_for(req)["sid"]]
        return 204, None

    def _verification_json(self, ver: dict[str, Any], *, check: bool = False) -> dict[str, Any]:
        data = public(ver)
        data["date_created"], data["date_updated"] = (
            iso(ver["date_created"]),
            iso(ver["date_updated"]),
        )
        if check:
            for key in ("lookup", "send_code_attempts", "sna", "url"):
                data.pop(key, None)
            data["sna_attempts_error_codes"] = []
        return data

    def _expire_verifications(self) -> None:
        now = utc_now()
        for ver in self._verifications.values():
            if ver["status"] == "pending" and now > ver["_expires"]:
                ver["status"] = "expired"

    def _pending_verification(self, service_sid: str, to: str) -> dict[str, Any] | None:
        self._expire_verifications()
        candidates = [
            v
            for v in self._verifications.values()
            if v["service_sid"] == service_sid and v["to"] == to and v["status"] == "pending"
        ]
        return max(candidates, key=lambda v: v["_seq"]) if candidates else None

    def _h_create_verification(self, req: SandboxRequest) -> tuple[int, Any]:
        service = self._verify_service_for(req)
        to, channel = (req.get("To") or "").strip(), req.get("Channel") or ""
        if channel not in {"sms", "call", "email", "whatsapp"}:
            raise TwilioApiError(400, 60200, "Invalid parameter: Channel")
        valid_to = "@" in to if channel == "email" else bool(E164_RE.fullmatch(to))
        if not valid_to:
            raise TwilioApiError(400, 60200, f"Invalid parameter `To`: {to}")
        now = utc_now()
        sends = self._verify_sends.setdefault((service["sid"], to), deque())
        while sends and now - sends[0] > VERIFY_TTL:
            sends.popleft()
        if len(sends) >= VERIFY_MAX_SENDS:
            raise TwilioApiError(429, 60203, "Max send attempts reached")
        sends.append(now)
        ver = self._pending_verification(service["sid"], to)
        if ver is None:
            sid = new_sid("VE")
            code = "".join(secrets.choice(string.digits) for _ in range(service["code_length"]))
            ver = {
                "sid": sid,
                "service_sid": service["sid"],
                "account_sid": service["account_sid"],
                "to": to,
                "channel": channel,
                "status": "pending",
                "valid": False,
                "lookup": {"carrier": None},
                "amount": None,
                "payee": None,
                "send_code_attempts": [],
                "date_created": now,
                "date_updated": now,
                "sna": None,
                "url": self._verify_url(req, f"Services/{service['sid']}/Verifications/{sid}"),
                "_code": code,
                "_expires": now + VERIFY_TTL,
                "_checks": 0,
                "_seq": self._next_seq(),
            }
            self._verifications[sid] = ver
        ver["channel"] = channel
        ver["date_updated"] = now
        ver["send_code_attempts"].append({"attempt_sid": new_sid("VL"), "channel": channel, "time": iso(now)})
        self._verify_codes.append(
            {
                "to": to,
                "code": ver["_code"],
                "channel": channel,
                "service_sid": service["sid"],
                "verification_sid": ver["sid"],
                "date_created": iso(now),
            }
        )
        logger.info(
            "Verify code %s for %s via %s (service %s)",
            ver["_code"],
            mask_phone(to),
            channel,
            service["sid"],
        )
        return 201, self._verification_json(ver)

    def _h_fetch_verification(self, req: SandboxRequest) -> tuple[int, Any]:
        service = self._verify_service_for(req)
        self._expire_verifications()
        ver = self._verifications.get(req.params["Sid"])
        if ver is None or ver["service_sid"] != service["sid"]:
            raise not_found(req.path)
        return 200, self._verification_json(ver)

    def _h_update_verification(self, req: SandboxRequest) -> tuple[int, Any]:
        service = self._verify_service_for(req)
        ver = self._verifications.get(req.params["Sid"])
        if ver is None or ver["service_sid"] != service["sid"] or ver["status"] != "pending":
            raise not_found(req.path)
        status = req.get("Status")
        if status not in {"canceled", "approved"}:
            raise TwilioApiError(400, 60200, "Invalid parameter: Status")
        ver["status"], ver["valid"], ver["date_updated"] = status, status == "approved", utc_now()
        return 200, self._verification_json(ver)

    def _h_check_verification(self, req: SandboxRequest) -> tuple[int, Any]:
        service = self._verify_service_for(req)
        code = req.get("Code")
        if not code:
            raise TwilioApiError(400, 60200, "Invalid parameter: Code")
        ver_sid, to = req.get("VerificationSid"), (req.get("To") or "").strip()
        if ver_sid:
            self._expire_verifications()
            ver = self._verifications.get(ver_sid)
            if ver is not None and (ver["service_sid"] != service["sid"] or ver["status"] != "pending"):
                ver = None
        elif to:
            ver = self._pending_verification(service["sid"], to)
        else:
            raise TwilioApiError(400, 60200, "Either a 'To' or a 'VerificationSid' is required")
        if ver is None:
            raise not_found(req.path)
        if ver["_checks"] >= VERIFY_MAX_CHECKS:
            ver["status"] = "max_attempts_reached"
            raise TwilioApiError(429, 60202, "Max check attempts reached")
        ver["_checks"] += 1
        ver["date_updated"] = utc_now()
        if hmac.compare_digest(code, ver["_code"]):
            ver["status"], ver["valid"] = "approved", True
        return 200, self._verification_json(ver, check=True)
