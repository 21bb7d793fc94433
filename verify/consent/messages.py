"""What the public page says when a code can't be sent or checked: plain words, the same for
every number (none of them depends on what the tenant knows about it)."""

from __future__ import annotations

from verify.codes import CodeCheck, CodeError

#: Verify's refusals (DOMAIN.md), in words a person can act on.
VERIFY_REFUSALS = {
    60200: "That number or address doesn't look right. Check it (include the country code) and try again.",
    60202: "Too many wrong codes for this request. Ask for a new code.",
    60203: "Too many codes were sent to this number. Wait 10 minutes before asking again, or choose a call.",
    60212: "Too many requests for this number at once. Wait a few minutes, then try again.",
    20429: "We're receiving too many requests right now. Wait a moment and try again.",
}
REFUSED_OTHER = "The code could not be sent. Check the number and try again."


def send_error_text(error: CodeError) -> str:
    if error.kind == "limited":
        if error.reason == "interval":
            return f"A code was sent moments ago. Wait {error.retry_after} seconds before asking for another."
        minutes = max(1, (error.retry_after + 59) // 60)
        return f"Too many codes were requested. Try again in {minutes} minutes."
    if error.kind == "refused":
        return VERIFY_REFUSALS.get(error.twilio_code, REFUSED_OTHER)
    if error.kind == "unavailable":
        return "We can't send a code that way right now. Try a text message or try again shortly."
    return REFUSED_OTHER


def check_text(result: CodeCheck) -> str:
    if result.unavailable:
        return "We couldn't check the code just now. Ask for a new code and enter that one."
    if result.status == "pending":
        left = result.attempts_left
        return f"That code is not right. {left} {'try' if left == 1 else 'tries'} left."
    if result.status == "max_attempts_reached":
        return VERIFY_REFUSALS[60202]
    if result.status == "expired":
        return "This code has expired. Ask for a new code."
    return "This code can no longer be used. Ask for a new code."
