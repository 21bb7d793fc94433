"""Voice callbacks as Twilio posts them, for the voice tests."""

from __future__ import annotations

STATUS = "/webhooks/twilio/voice/status/"
RECORDING = "/webhooks/twilio/voice/recording/"
CALLER = "+14155550123"
OUR_NUMBER = "+14155550100"
#: When each status happens in these callbacks' call (its `Timestamp`).
_SECOND = {"queued": 0, "initiated": 0, "ringing": 5, "in-progress": 10, "completed": 15, "busy": 15, "no-answer": 15}


def call_callback(tenant, call_sid: str, status: str, seq: int | None, **extra) -> dict:
    """A status callback for `call_sid` as Twilio posts it (call-progress-events)."""
    params = {
        "AccountSid": tenant.account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": status,
        "Direction": "inbound",
        "From": CALLER,
        "To": OUR_NUMBER,
        "CallbackSource": "call-progress-events",
        "Timestamp": f"Thu, 03 Dec 2026 14:00:{_SECOND.get(status, 0):02d} +0000",
    }
    if seq is not None:
        params["SequenceNumber"] = str(seq)
    params.update(extra)
    return params


def recording_callback(tenant, call_sid: str, recording_sid: str, status: str = "completed", **extra) -> dict:
    params = {
        "AccountSid": tenant.account_sid,
        "CallSid": call_sid,
        "RecordingSid": recording_sid,
        "RecordingStatus": status,
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{tenant.account_sid}/Recordings/{recording_sid}",
        "RecordingDuration": "7",
        "RecordingChannels": "1",
        "RecordingSource": "RecordVerb",
        "RecordingStartTime": "Thu, 03 Dec 2026 14:00:10 +0000",
    }
    params.update(extra)
    return params
