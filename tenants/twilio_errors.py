"""Twilio error codes explained for support staff, and the retry policy that follows from them.

Twilio's own error pages are written for developers. The portal shows these texts next to a
failed message, call or API action, so each one says *what happened* and *what to do*, in words a
support person can repeat to a tenant. Sources: Twilio's error dictionary
(https://www.twilio.com/docs/api/errors). The codes themselves are named in
`tenants.twilio_codes`.

The retry sets encode one rule: retrying a request that cannot succeed wastes money (most failed
messages carry a processing fee since September 2024), annoys carriers and, for opted-out or
wrong recipients, is a compliance problem. Only throttling and Twilio-side hiccups are retried.
"""

from __future__ import annotations

import requests
from urllib3.exceptions import ConnectTimeoutError

from . import twilio_codes as codes

__all__ = [
    "ERRORS",
    "RETRYABLE_CODES",
    "TERMINAL_CODES",
    "explain",
    "is_retryable",
    "maybe_sent_http",
    "maybe_sent_transport",
]

ERRORS: dict[int, str] = {
    # --- Account and API ---------------------------------------------------------------------
    codes.AUTHENTICATION_FAILED: (
        "Twilio rejected the credentials (authentication failed). The tenant's Account SID, "
        "Auth Token or API key is wrong, was rotated or revoked, or belongs to a different "
        "(sub)account than the resource. Re-enter or rotate the tenant's credentials and check "
        "that the SID and token come from the same subaccount."
    ),
    codes.RESOURCE_NOT_FOUND: (
        "Twilio could not find the requested resource. It was deleted, the SID is mistyped, or "
        "it belongs to another (sub)account than the credentials used. Check the SID and which "
        "tenant it belongs to."
    ),
    codes.TOO_MANY_REQUESTS: (
        "Too many requests: the account sent more concurrent API requests than Twilio allows, so "
        "this one was not processed. It is safe to retry; the portal backs off and retries "
        "automatically. If it keeps happening, the tenant is sending too fast and should slow "
        "its campaigns down."
    ),
    codes.INTERNAL_SERVER_ERROR: (
        "Twilio had an internal server error and did not complete the request. This is on "
        "Twilio's side; the portal retries automatically. If it persists, check "
        "status.twilio.com."
    ),
    codes.SERVICE_UNAVAILABLE: (
        "Twilio's service was temporarily unavailable. The portal retries automatically; if it "
        "persists, check status.twilio.com."
    ),
    codes.INVALID_TO_NUMBER: (
        "The 'To' phone number is not a valid phone number. Correct the number (it must be in "
        "international E.164 format, e.g. +14155550100); retrying as-is will fail again."
    ),
    codes.GEO_PERMISSION_DENIED: (
        "The account is not allowed to send to the country of this 'To' number (geographic "
        "permissions). If the tenant really needs to reach that country, enable it in the "
        "Twilio Console under Messaging > Settings > Geo permissions, then resend."
    ),
    codes.SUBACCOUNT_SUSPENDED_BY_TWILIO: (
        "The subaccount's status cannot be changed because Twilio itself suspended it. The "
        "portal cannot reactivate, suspend or close it; the account owner must contact Twilio "
        "Support."
    ),
    codes.FROM_MISSING: (
        "No 'From' number (or Messaging Service) was given, so Twilio does not know who the "
        "message is from. Check the tenant's sender configuration; this is a setup problem, "
        "not a delivery problem."
    ),
    codes.TO_MISSING: (
        "No 'To' number was given. The recipient's phone number is missing from the request; "
        "fix the contact record and resend."
    ),
    codes.FROM_CANNOT_REACH_DESTINATION: (
        "The 'From' number cannot send messages to this destination (it is not SMS-capable, "
        "not owned by this account, or not allowed for that country). Pick another sender or "
        "add a suitable number to the Messaging Service."
    ),
    codes.TRIAL_UNVERIFIED_RECIPIENT: (
        "The tenant is on a Twilio trial account, which can only send to verified numbers. "
        "Verify the recipient in the Twilio Console or upgrade the account."
    ),
    codes.OPTED_OUT: (
        "The recipient has opted out of messages from this sender (they texted STOP or a "
        "similar keyword), so Twilio blocked the send. Do not retry. The portal records this as "
        "an opt-out; only the recipient can undo it by texting START (or UNSTOP) to the same "
        "sender."
    ),
    codes.UNROUTABLE_FROM_TO_PAIR: (
        "Twilio cannot route a message between this 'From' and 'To' (unsupported combination, "
        "e.g. an alphanumeric sender ID to a US number, or a number type the destination does "
        "not accept). Use a different sender for this destination."
    ),
    codes.TO_NOT_MOBILE: (
        "The 'To' number is not a mobile number (for example a landline), so it cannot receive "
        "SMS. Ask for a mobile number or contact the person another way."
    ),
    codes.BODY_TOO_LONG: (
        "The message body is longer than Twilio's 1,600-character limit. Shorten the message "
        "(or split it) and send again."
    ),
    codes.SERVICE_NOT_FOUND: (
        "The Messaging Service SID the message was sent with does not exist in this tenant's "
        "Twilio subaccount (mistyped, deleted, or from another account), so nothing can be sent "
        "through it. Fix the Messaging Service SID in the tenant's settings."
    ),
    codes.SERVICE_HAS_NO_SENDER: (
        "The Messaging Service has no sender that can be used (its sender pool is empty or has "
        "no number suitable for this destination). Add a phone number to the tenant's Messaging "
        "Service, then resend."
    ),
    # --- Delivery (reported in status callbacks) ----------------------------------------------
    codes.QUEUE_OVERFLOW: (
        "Twilio's outbound queue for this sender overflowed: messages were submitted faster "
        "than the sender can send them. Slow the sending rate; the portal may retry later."
    ),
    codes.ACCOUNT_SUSPENDED: (
        "The Twilio account is suspended, so the message was not sent. The account owner must "
        "contact Twilio (it is often a billing issue) before anything can be sent."
    ),
    codes.UNREACHABLE_DESTINATION: (
        "The recipient's phone was unreachable (switched off, out of coverage, or the carrier "
        "could not reach it). Do not retry automatically; if it happens repeatedly the number "
        "is probably no longer in use and should be reviewed."
    ),
    codes.MESSAGE_BLOCKED: (
        "The message was blocked, by the recipient (they blocked the sender or their plan "
        "blocks such messages) or by the carrier. Do not retry; contact the person another way "
        "if needed."
    ),
    codes.UNKNOWN_DESTINATION: (
        "The destination number is unknown or no longer exists. Do not retry; mark the number "
        "as invalid and ask the contact for a current number."
    ),
    codes.LANDLINE_OR_UNREACHABLE_CARRIER: (
        "The number is a landline or on a carrier that cannot receive SMS. Do not retry; use a "
        "voice call or ask for a mobile number."
    ),
    codes.CARRIER_FILTERED: (
        "The carrier filtered the message as spam or a policy violation. Do not resend the same "
        "content. Review the wording (links, URL shorteners, missing opt-out text) and the "
        "tenant's registration (10DLC campaign or toll-free verification)."
    ),
    codes.UNKNOWN_ERROR: (
        "Delivery failed for an unknown reason reported by the carrier. It may be temporary. "
        "Check that the number is correct and the content is ordinary, then resend once "
        "manually; if it keeps failing, contact Twilio Support with the Message SID."
    ),
    codes.TOLL_FREE_NOT_VERIFIED: (
        "The toll-free sender has not been verified, so carriers block its traffic. The tenant "
        "must complete toll-free verification in the Twilio Console before sending."
    ),
    codes.UNREGISTERED_10DLC: (
        "The message came from a US 10-digit (long code) number that is not registered to an "
        "approved A2P 10DLC campaign, so US carriers blocked it. Register the number with an "
        "approved campaign (brand + campaign in Twilio's Trust Hub), then resend."
    ),
    codes.VALIDITY_PERIOD_EXPIRED: (
        "The message waited in Twilio's queue longer than its validity period and expired "
        "without being sent. The tenant is sending faster than its senders allow; slow down or "
        "add senders, and resend only if the message is still relevant."
    ),
    codes.COMPLIANCE_RESCHEDULE_FAILED: (
        "Twilio's Compliance Toolkit tried to reschedule this message into a compliant time "
        "window (quiet hours) and failed, so it was neither sent nor queued. Retrying is "
        "appropriate; if it persists, contact Twilio Support with the Message SID."
    ),
    # --- Verify --------------------------------------------------------------------------------
    codes.VERIFY_INVALID_PARAMETER: (
        "Twilio Verify rejected a parameter (for example a malformed phone number, unsupported "
        "channel or invalid code format). Check the number and the channel; retrying unchanged "
        "will fail again."
    ),
    codes.VERIFY_MAX_CHECK_ATTEMPTS: (
        "The person entered a wrong code too many times (Verify allows 5 checks). That "
        "verification is finished; start a new one, after a short pause."
    ),
    codes.VERIFY_MAX_SEND_ATTEMPTS: (
        "Too many verification codes were sent to this number for the current verification. "
        "Wait until it expires (10 minutes by default) before starting a new one, or offer "
        "another channel such as a call or email."
    ),
    codes.VERIFY_TOO_MANY_CONCURRENT: (
        "Too many verifications were started for the same number in a short time. Wait before "
        "trying again. If nobody on the tenant's side is doing this, it may be fraudulent "
        "traffic (SMS pumping) and should be investigated."
    ),
    # --- WhatsApp ------------------------------------------------------------------------------
    codes.WHATSAPP_OUTSIDE_SESSION: (
        "The WhatsApp message was not sent because it is outside the 24-hour customer service "
        "window: free-form messages are only allowed within 24 hours of the person's last "
        "message. Send an approved message template instead (or wait for the person to write)."
    ),
    codes.DAILY_MESSAGE_LIMIT: (
        "The account reached its daily message limit, so Twilio stopped sending for today. "
        "Messages can be sent again after the limit resets; to raise the limit, the account "
        "owner must contact Twilio (new or trial accounts have low limits)."
    ),
    # --- Webhooks (Twilio calling the portal) --------------------------------------------------
    codes.WEBHOOK_HTTP_ERROR: (
        "Twilio could not get a valid answer from the portal's webhook (the request failed, "
        "timed out or returned an error status). Check that the webhook URL is right and the "
        "portal was up at that time; the event may have been retried by Twilio."
    ),
    codes.WEBHOOK_CONNECTION_FAILED: (
        "Twilio could not connect to the portal's webhook URL (connection refused, DNS or "
        "TLS/certificate problem). Check the URL configured on the number or Messaging Service "
        "and that the site is reachable over HTTPS."
    ),
}

#: Codes that will fail again if the same request is repeated: the recipient, the content, the
#: configuration or the account must change first. Never retried automatically.
TERMINAL_CODES: frozenset[int] = frozenset(
    {
        codes.AUTHENTICATION_FAILED,  # credentials must be fixed first
        codes.RESOURCE_NOT_FOUND,
        codes.INVALID_TO_NUMBER,
        codes.GEO_PERMISSION_DENIED,
        codes.SUBACCOUNT_SUSPENDED_BY_TWILIO,
        codes.FROM_MISSING,
        codes.TO_MISSING,
        codes.FROM_CANNOT_REACH_DESTINATION,
        codes.TRIAL_UNVERIFIED_RECIPIENT,
        codes.OPTED_OUT,  # opted out: retrying is a compliance violation
        codes.UNROUTABLE_FROM_TO_PAIR,
        codes.TO_NOT_MOBILE,
        codes.BODY_TOO_LONG,
        codes.SERVICE_NOT_FOUND,
        codes.SERVICE_HAS_NO_SENDER,
        codes.ACCOUNT_SUSPENDED,
        codes.UNREACHABLE_DESTINATION,
        codes.MESSAGE_BLOCKED,
        codes.UNKNOWN_DESTINATION,
        codes.LANDLINE_OR_UNREACHABLE_CARRIER,
        codes.CARRIER_FILTERED,  # resending filtered content hurts the sender's reputation
        codes.TOLL_FREE_NOT_VERIFIED,
        codes.UNREGISTERED_10DLC,
        codes.VERIFY_INVALID_PARAMETER,
        codes.VERIFY_MAX_CHECK_ATTEMPTS,
        codes.VERIFY_MAX_SEND_ATTEMPTS,
        codes.WHATSAPP_OUTSIDE_SESSION,
    }
)

#: Codes where the same request may succeed later, after a back-off: throttling and Twilio-side
#: failures. 30047 is here because Twilio's reference recommends retrying it.
RETRYABLE_CODES: frozenset[int] = frozenset(
    {
        codes.TOO_MANY_REQUESTS,
        codes.INTERNAL_SERVER_ERROR,
        codes.SERVICE_UNAVAILABLE,
        codes.QUEUE_OVERFLOW,
        codes.COMPLIANCE_RESCHEDULE_FAILED,
        codes.VERIFY_TOO_MANY_CONCURRENT,
    }
)


def _as_code(code: int | str | None) -> int | None:
    """Return ``code`` as an int, or None when it is empty or not a number.

    Codes arrive as ints from twilio-python and as strings from webhook form data.
    """
    if code is None or isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    text = str(code).strip()
    return int(text) if text.isdigit() else None


def explain(code: int | str | None) -> str:
    """Human explanation of a Twilio error code for support staff.

    ``None`` and ``""`` mean "no error" and give ``""``, so templates can show the result
    unconditionally. Unknown codes still produce a useful sentence pointing to Twilio's page.
    """
    if code is None:
        return ""
    raw = str(code).strip()
    if not raw:
        return ""
    number = _as_code(raw)
    if number is not None and number in ERRORS:
        return ERRORS[number]
    if number is None:
        return f"Twilio error {raw} (no explanation on file)."
    return (
        f"Twilio error {number} (no explanation on file). "
        f"See https://www.twilio.com/docs/api/errors/{number} for details."
    )


def is_retryable(code: int | None, http_status: int | None) -> bool:
    """Whether repeating the same request later may succeed.

    The Twilio error code decides first, because it is more specific than the HTTP status
    (e.g. 21610 arrives as a 400, 60212 as a 429). Otherwise HTTP 429 and 5xx are retried and
    everything else is not: a 4xx means the request itself is wrong. twilio-python falls back
    to the HTTP status when the body has no code, so a "code" between 100 and 599 is read as an
    HTTP status. With no information at all the answer is False: transport errors (timeouts,
    connection failures) arrive as ``requests`` exceptions and are classified by the caller,
    which knows whether the message may already have been created.
    """
    number = _as_code(code)
    if number is not None:
        if number in TERMINAL_CODES:
            return False
        if number in RETRYABLE_CODES:
            return True
        if http_status is None and 100 <= number <= 599:
            http_status = number
    if http_status is None:
        return False
    return http_status == 429 or 500 <= http_status <= 599


def maybe_sent_http(http_status: int | None) -> bool:
    """Whether Twilio may have acted on a request it answered with `http_status`.

    A 4xx (429 included) is answered before anything is created. A 5xx may come from a proxy
    after the request reached the service that acts on it, so it stays uncertain.
    """
    return http_status is not None and 500 <= http_status <= 599


def maybe_sent_transport(exc: BaseException) -> bool:
    """Whether a request that failed with the `requests` exception `exc` may have reached Twilio.

    Certainly not when the connection was never made: refused, DNS failure, connect timeout,
    TLS handshake failure (urllib3 reports all but the last as a `ConnectTimeoutError`
    subclass, `NewConnectionError` and `NameResolutionError` included), or the request could
    not even be built. Anything after the request left (a read timeout, a reset or a closed
    connection while waiting for the answer, a broken answer) may have been acted on.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.SSLError):
        return False
    if isinstance(exc, requests.exceptions.ConnectionError):
        cause = exc.args[0] if exc.args else None
        reason = getattr(cause, "reason", cause)
        return not isinstance(reason, ConnectTimeoutError)
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return False
    return True
