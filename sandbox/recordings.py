"""Recordings: metadata (fetch, delete) and the audio itself, with HTTP Range support so a
player can seek, as Twilio serves `…/Recordings/RE….mp3` (and `.wav`, the default without an
extension) to the account's credentials only.

`recording_create(...)` makes one for a call (the voice interpreter's `<Record>` calls it, and
`POST /sandbox/recordings` does for tests); `recording_callback_params(...)` is the recording
status callback Twilio would send for it. The audio is silence of the recording's duration.
"""

from __future__ import annotations

import io
import re
import wave
from typing import Any

from .accounts import AccountsApi
from .errors import TwilioApiError, not_found
from .http import Reply, SandboxRequest
from .state import API, API_VERSION, new_sid, public, rfc2822, utc_now

#: One silent MPEG-1 Layer III frame (128 kbit/s, 44.1 kHz, 26 ms): a real player plays it.
_MP3_FRAME = b"\xff\xfb\x90\x64" + b"\x00" * 413
_FRAMES_PER_SECOND = 44100 / 1152
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def silent_mp3(seconds: int) -> bytes:
    return _MP3_FRAME * max(1, round(seconds * _FRAMES_PER_SECOND))


def silent_wav(seconds: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 8000 * max(1, seconds))
    return buffer.getvalue()


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """(first, last) of a single `Range: bytes=…` header; None without one; False when it
    can't be satisfied (416)."""
    if not header:
        return None
    found = _RANGE.fullmatch(header.strip())
    if not found or not (found[1] or found[2]):
        return None  # a malformed or multi-range header is ignored, as servers may
    if found[1]:
        first = int(found[1])
        last = min(int(found[2]), size - 1) if found[2] else size - 1
    else:
        first, last = max(0, size - int(found[2])), size - 1
    if first >= size or first > last:
        return False
    return first, last


class RecordingsApi(AccountsApi):
    """Each account's recordings and their audio."""

    def _reset_state(self) -> None:
        super()._reset_state()
        with self._lock:
            self._recordings: dict[str, dict[str, Any]] = {}

    def recording_create(
        self, account_sid: str, call_sid: str, *, duration: int = 5, source: str = "RecordVerb"
    ) -> dict[str, Any]:
        """Store a completed recording of `call_sid` (its audio: `duration` seconds of silence)."""
        now = utc_now()
        sid = new_sid("RE")
        recording = {
            "sid": sid,
            "account_sid": account_sid,
            "call_sid": call_sid,
            "conference_sid": None,
            "date_created": now,
            "date_updated": now,
            "start_time": now,
            "duration": str(duration),
            "channels": 1,
            "source": source,
            "status": "completed",
            "price": None,
            "price_unit": "USD",
            "error_code": None,
            "api_version": API_VERSION,
            "uri": f"{API}/Accounts/{account_sid}/Recordings/{sid}.json",
            "_duration": duration,
        }
        with self._lock:
            self._recordings[sid] = recording
        return self._recording_json(recording)

    def recording_callback_params(self, recording: dict[str, Any], base_url: str) -> dict[str, str]:
        """The recording status callback Twilio sends once `recording` is completed."""
        return {
            "AccountSid": recording["account_sid"],
            "CallSid": recording["call_sid"],
            "RecordingSid": recording["sid"],
            "RecordingUrl": f"{base_url}{API}/Accounts/{recording['account_sid']}/Recordings/{recording['sid']}",
            "RecordingStatus": recording["status"],
            "RecordingDuration": recording["duration"],
            "RecordingChannels": str(recording["channels"]),
            "RecordingSource": recording["source"],
            "RecordingStartTime": recording["start_time"],
            "ErrorCode": "0",
        }

    def _recording_json(self, recording: dict[str, Any]) -> dict[str, Any]:
        data = public(recording)
        for key in ("date_created", "date_updated", "start_time"):
            data[key] = rfc2822(recording[key])
        return data

    def _recording_for(self, req: SandboxRequest) -> dict[str, Any]:
        account = self._scoped_account(req)
        recording = self._recordings.get(req.params["Sid"])
        if recording is None or recording["account_sid"] != account.sid:
            raise not_found(req.path)
        return recording

    def _h_fetch_recording(self, req: SandboxRequest) -> tuple[int, Any]:
        return 200, self._recording_json(self._recording_for(req))

    def _h_delete_recording(self, req: SandboxRequest) -> tuple[int, Any]:
        recording = self._recording_for(req)
        del self._recordings[recording["sid"]]
        return 204, None

    def _h_recording_mp3(self, req: SandboxRequest) -> Reply:
        recording = self._recording_for(req)
        return self._media(req, silent_mp3(recording["_duration"]), "audio/mpeg")

    def _h_recording_wav(self, req: SandboxRequest) -> Reply:
        recording = self._recording_for(req)
        return self._media(req, silent_wav(recording["_duration"]), "audio/x-wav")

    @staticmethod
    def _media(req: SandboxRequest, audio: bytes, content_type: str) -> Reply:
        size = len(audio)
        wanted = byte_range(req.headers.get("Range"), size)
        headers = {"Content-Type": content_type, "Accept-Ranges": "bytes"}
        if wanted is False:
            return Reply(416, b"", {**headers, "Content-Range": f"bytes */{size}"})
        if wanted is None:
            return Reply(200, audio, headers)
        first, last = wanted
        return Reply(206, audio[first : last + 1], {**headers, "Content-Range": f"bytes {first}-{last}/{size}"})

    def _h_ctl_recordings(self, req: SandboxRequest) -> tuple[int, Any]:
        """POST /sandbox/recordings: AccountSid, CallSid, Duration (seconds)."""
        account_sid, call_sid = req.get("AccountSid") or "", req.get("CallSid") or ""
        if account_sid not in self._accounts or not call_sid:
            raise TwilioApiError(400, 20001, "AccountSid (a known account) and CallSid are required")
        try:
            duration = max(1, min(int(req.get("Duration") or 5), 3600))
        except ValueError as exc:
            raise TwilioApiError(400, 20001, "Duration must be a number of seconds") from exc
        return 201, self.recording_create(account_sid, call_sid, duration=duration)
