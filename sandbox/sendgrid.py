"""SendGrid v3 mail send and its signed Event Webhook, on the same local server.

`POST /v3/mail/send` with `Authorization: Bearer <key>` answers as SendGrid does: 202 with an
empty body and an `X-Message-Id` header; 401 for any key but `sendgrid_api_key` (SendGrid's
"authorization grant is invalid" error), 403 for `sendgrid_restricted_key` (a key without the
mail.send scope), 400 with SendGrid's `{"errors": [{message, field, help}]}` for a payload that
is not the v3 shape (personalizations with `to`, `from`, a subject and content unless a dynamic
template `d-…` is named, string-valued `custom_args`).

Each accepted email then produces Event Webhook events, posted to `sendgrid_event_webhook_url`
(when set) as SendGrid posts them: a JSON array, every event carrying the send's `custom_args`
as top-level fields, signed with ECDSA P-256 over timestamp + body (headers
`X-Twilio-Email-Event-Webhook-Signature` / `-Timestamp`) by a key pair the sandbox holds; its
public key (`sendgrid_public_key`, base64 DER as SendGrid shows it) is what the portal's
`SENDGRID_WEBHOOK_PUBLIC_KEY` must be. Outcomes by the recipient's local part:
    bounce@…  -> processed, bounce          drop@… -> dropped
    spam@…    -> processed, delivered, spamreport
    anything else -> processed, delivered
Control: GET /sandbox/sendgrid (keys, webhook URL, accepted mails), POST /sandbox/sendgrid
(`event_webhook_url`), POST /sandbox/sendgrid/events (a JSON array of events to sign and post).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from typing import Any

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .callbacks import WEBHOOK_TIMEOUT, CallbacksApi
from .http import Reply, SandboxRequest
from .state import iso, logger, utc_now

#: The demo's SendGrid API key (any other key answers 401, like SendGrid).
DEV_SENDGRID_API_KEY = "SG.sandbox-development-key.not-a-real-sendgrid-key"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
BOUNCE_REASON = "550 5.1.1 The email account that you tried to reach does not exist."


def sendgrid_error(status: int, message: str, field: str | None = None) -> Reply:
    """SendGrid's error body."""
    return Reply(status, {"errors": [{"message": message, "field": field, "help": None}]})


def mail_payload_errors(payload: Any) -> list[tuple[str, str | None]]:
    """What SendGrid's v3 mail send would refuse in `payload`, as (message, field) pairs."""
    if not isinstance(payload, dict):
        return [("The request body must be a JSON object.", None)]
    errors: list[tuple[str, str | None]] = []
    personalizations = payload.get("personalizations")
    if not isinstance(personalizations, list) or not 1 <= len(personalizations) <= 1000:
        errors.append(
            ("The personalizations field is required and must have at least one personalization.", "personalizations")
        )
        personalizations = []
    for index, item in enumerate(personalizations):
        to = item.get("to") if isinstance(item, dict) else None
        if (
            not isinstance(to, list)
            or not to
            or not all(isinstance(t, dict) and "@" in str(t.get("email", "")) for t in to)
        ):
            errors.append(
                ("Each personalization must have a 'to' array of email objects.", f"personalizations.{index}.to")
            )
    sender = payload.get("from")
    if not isinstance(sender, dict) or "@" not in str(sender.get("email", "")):
        errors.append(("The from object must be provided for every email send.", "from.email"))
    template = str(payload.get("template_id") or "")
    if not template.startswith("d-"):
        subjects = [p.get("subject") for p in personalizations if isinstance(p, dict)]
        if not payload.get("subject") and not all(subjects):
            errors.append(
                ("The subject is required. You can get around this requirement if you use a template.", "subject")
            )
        content = payload.get("content")
        if (
            not isinstance(content, list)
            or not content
            or not all(isinstance(c, dict) and c.get("type") and c.get("value") for c in content)
        ):
            errors.append(("Unless a valid template_id is provided, the content parameter is required.", "content"))
    custom_args = payload.get("custom_args", {})
    if not isinstance(custom_args, dict) or not all(isinstance(v, str) for v in custom_args.values()):
        errors.append(("Custom args values must be strings.", "custom_args"))
    return errors


def outcome_events(local_part: str) -> list[str]:
    """The events an accepted email produces, by its recipient's local part."""
    if local_part == "bounce":
        return ["processed", "bounce"]
    if local_part == "drop":
        return ["dropped"]
    if local_part == "spam":
        return ["processed", "delivered", "spamreport"]
    return ["processed", "delivered"]


class SendGridApi(CallbacksApi):
    """SendGrid's v3 mail send and Event Webhook (one platform account)."""

    def _reset_state(self) -> None:
        super()._reset_state()
        with self._lock:
            if not hasattr(self, "_sendgrid_private_key"):  # kept across resets: settings hold its public half
                self._sendgrid_private_key = ec.generate_private_key(ec.SECP256R1())
                self.sendgrid_api_key = DEV_SENDGRID_API_KEY
                self.sendgrid_restricted_key = "SG.sandbox-restricted-key.no-mail-send-scope"
                self.sendgrid_event_webhook_url = ""
            self._sendgrid_mails: list[dict[str, Any]] = []

    @property
    def sendgrid_public_key(self) -> str:
        """The Event Webhook verification key, as SendGrid shows it (base64 DER, no PEM lines)."""
        der = self._sendgrid_private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def sendgrid_sign(self, payload: str, timestamp: str | None = None) -> dict[str, str]:
        """The signature headers SendGrid sends with `payload` (a JSON string)."""
        timestamp = timestamp or str(int(time.time()))
        signature = self._sendgrid_private_key.sign((timestamp + payload).encode(), ec.ECDSA(hashes.SHA256()))
        return {SIGNATURE_HEADER: base64.b64encode(signature).decode(), TIMESTAMP_HEADER: timestamp}

    def sendgrid_mails(self) -> list[dict[str, Any]]:
        """Accepted mails, oldest first (payload, message id, events posted)."""
        with self._lock:
            return [dict(m) for m in self._sendgrid_mails]

    def _h_sendgrid_mail_send(self, req: SandboxRequest) -> Reply:
        auth = req.headers.get("Authorization") or ""
        key = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        if key == self.sendgrid_restricted_key:
            return sendgrid_error(403, "access forbidden")
        if not key or key != self.sendgrid_api_key:
            return sendgrid_error(401, "The provided authorization grant is invalid, expired, or revoked")
        try:
            payload = json.loads(req.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return sendgrid_error(400, "Bad Request", None)
        errors = mail_payload_errors(payload)
        if errors:
            return Reply(400, {"errors": [{"message": m, "field": f, "help": None} for m, f in errors]})
        message_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")[:22]
        mail = {"message_id": message_id, "payload": payload, "date": iso(utc_now()), "events": []}
        with self._lock:
            self._sendgrid_mails.append(mail)
        self._spawn(self._sendgrid_progress, mail)
        return Reply(202, None, headers={"X-Message-Id": message_id})

    def _sendgrid_progress(self, mail: dict[str, Any]) -> None:
        """Post each recipient's events, one signed batch per step, as SendGrid would."""
        payload = mail["payload"]
        for personalization in payload["personalizations"]:
            custom_args = {**payload.get("custom_args", {}), **personalization.get("custom_args", {})}
            for recipient in personalization["to"]:
                address = recipient["email"]
                for kind in outcome_events(address.split("@", 1)[0].lower()):
                    if self._stopping.wait(self.callback_delay):
                        return
                    event = self._sendgrid_event(kind, address, mail, custom_args)
                    with self._lock:
                        mail["events"].append(kind)
                    self.sendgrid_post_events([event])

    def _sendgrid_event(self, kind: str, address: str, mail: dict[str, Any], custom_args: dict) -> dict[str, Any]:
        payload = mail["payload"]
        event = {
            **custom_args,
            "email": address,
            "timestamp": int(time.time()),
            "event": kind,
            "sg_event_id": base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("="),
            "sg_message_id": f"{mail['message_id']}.filterdrecv-sandbox.0.0",
            "smtp-id": f"<{mail['message_id']}@sandbox.sendgrid.local>",
            "category": payload.get("categories", []),
        }
        if isinstance(payload.get("asm"), dict):
            event["asm_group_id"] = payload["asm"].get("group_id")
        if kind == "bounce":
            event.update(type="bounce", reason=BOUNCE_REASON, status="5.1.1")
        elif kind == "dropped":
            event["reason"] = "Bounced Address"
        elif kind == "delivered":
            event["response"] = "250 OK"
        return event

    def sendgrid_post_events(self, events: list[dict[str, Any]]) -> requests.Response | None:
        """Sign and post one batch to `sendgrid_event_webhook_url` (retried once on a
        connection failure, recorded with the Twilio webhooks); None when no URL is set."""
        url = self.sendgrid_event_webhook_url
        if not url:
            return None
        body = json.dumps(events)
        headers = {"Content-Type": "application/json", "User-Agent": "SendGrid Event API", **self.sendgrid_sign(body)}
        record: dict[str, Any] = {"kind": "sendgrid_events", "url": url, "method": "POST", "params": {"events": events}}
        response, error = None, None
        for _attempt in range(2):
            try:
                response = requests.post(url, data=body.encode(), headers=headers, timeout=WEBHOOK_TIMEOUT)
                break
            except requests.RequestException as exc:
                error = str(exc)
        record.update(
            status_code=getattr(response, "status_code", None),
            error=error if response is None else None,
            date=iso(utc_now()),
        )
        with self._lock:
            self._webhooks.append(record)
        if response is None or response.status_code >= 400:
            logger.warning("SendGrid events to %s: %s", url, error or response.status_code)
        return response

    def _h_ctl_sendgrid(self, req: SandboxRequest) -> tuple[int, Any]:
        return 200, {
            "api_key": self.sendgrid_api_key,
            "restricted_key": self.sendgrid_restricted_key,
            "webhook_public_key": self.sendgrid_public_key,
            "event_webhook_url": self.sendgrid_event_webhook_url,
            "mails": self.sendgrid_mails(),
        }

    def _h_ctl_sendgrid_settings(self, req: SandboxRequest) -> tuple[int, Any]:
        try:
            data = json.loads(req.body or b"{}")
        except ValueError:
            data = {}
        url = (data.get("event_webhook_url") if isinstance(data, dict) else None) or req.get("event_webhook_url") or ""
        if url and not url.startswith(("http://", "https://")):
            return 400, {"error": "event_webhook_url must be an http(s) URL"}
        self.sendgrid_event_webhook_url = url
        return 200, {"event_webhook_url": url}

    def _h_ctl_sendgrid_events(self, req: SandboxRequest) -> tuple[int, Any]:
        try:
            events = json.loads(req.body or b"")
        except ValueError:
            return 400, {"error": "body must be a JSON array of events"}
        if not isinstance(events, list):
            return 400, {"error": "body must be a JSON array of events"}
        response = self.sendgrid_post_events(events)
        return 200, {"posted": len(events), "status_code": getattr(response, "status_code", None)}
