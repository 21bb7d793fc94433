"""Twilio's error answers: the JSON shape the SDK turns into `TwilioRestException`."""

from __future__ import annotations

from typing import Any

ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    21610: "Attempt to send to unsubscribed recipient",
    30003: "Unreachable destination handset",
    30006: "Landline or unreachable carrier",
    30008: "Unknown error",
}


class TwilioApiError(Exception):
    """An error answered in Twilio's JSON shape, which the SDK turns into TwilioRestException."""

    def __init__(self, status: int, code: int, message: str | None = None):
        self.status = status
        self.code = code
        self.message = message or ERROR_MESSAGES.get(code, "Error")
        super().__init__(f"{status} {code} {self.message}")

    def payload(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def not_found(path: str) -> TwilioApiError:
    return TwilioApiError(404, 20404, f"The requested resource {path} was not found")
