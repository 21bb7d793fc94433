"""Recordings: metadata from Twilio's recording status callbacks, stored once per RecordingSid;
the audio stays at Twilio and is streamed through the portal (`recording_audio_open`), and is
deleted there by retention and erasure (`recordings_remote_delete`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import requests
from django.db import IntegrityError, transaction

from messaging.intake.params import param_phone
from tenants.models import Tenant
from tenants.twilio import TwilioError, tenant_client, tenant_media_get, twilio_each, twilio_errors

from ..models import Call, Recording
from . import statuses
from .params import param_int, param_text, voice_params_storable
from .records import call_get_or_create

logger = logging.getLogger("commsportal.voice")

__all__ = ["recording_audio_open", "recording_callback_apply", "recording_media_path", "recordings_remote_delete"]

#: A recording's own progression; the other two are final.
_RECORDING_RANK = {"in-progress": 0, "completed": 1, "absent": 1, "failed": 1}
#: Headers of Twilio's media answer a browser needs to play and seek.
STREAMED_HEADERS = ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges")


def recording_callback_apply(*, tenant: Tenant, params: Mapping) -> Recording | None:
    """Store a recording status callback: created on first sight of its RecordingSid, its status
    moving only forward (in-progress, then completed/absent/failed), linked to its call (whose
    row is created if the recording callback came first: a recording means it was answered).

    Idempotent: a repeat changes nothing. None when the SID is another tenant's."""
    params, _ = voice_params_storable(params)
    sid = param_text(params, "RecordingSid")
    status = param_text(params, "RecordingStatus").lower()[:16]
    with transaction.atomic():
        recordings = Recording.objects.for_tenant(tenant).select_for_update()
        recording = recordings.filter(sid=sid).first()
        if recording is None:
            call = _recording_call(tenant=tenant, params=params)
            try:
                with transaction.atomic():
                    recording = Recording.objects.create(
                        tenant=tenant, sid=sid, call=call, call_sid=param_text(params, "CallSid")
                    )
            except IntegrityError:
                recording = recordings.filter(sid=sid).first()
                if recording is None:
                    logger.warning("twilio.webhook.foreign_recording_sid", extra={"tenant": tenant.slug, "sid": sid})
                    return None
        if recording.deleted_at is None:
            _recording_update(recording, params=params, status=status)
    return recording


def _recording_call(*, tenant: Tenant, params: Mapping) -> Call | None:
    try:
        call, _ = call_get_or_create(
            tenant=tenant,
            sid=param_text(params, "CallSid"),
            direction=param_text(params, "Direction"),
            from_number=param_phone(param_text(params, "From"), tenant=tenant),
            to_number=param_phone(param_text(params, "To"), tenant=tenant),
            status=statuses.IN_PROGRESS,
        )
    except Call.DoesNotExist:
        return None  # another tenant's call: keep the recording, unlinked
    return call


def _recording_update(recording: Recording, *, params: Mapping, status: str) -> None:
    update = []
    if status in _RECORDING_RANK and (
        not recording.status or _RECORDING_RANK[status] > _RECORDING_RANK.get(recording.status, -1)
    ):
        recording.status = status
        update.append("status")
    fields = {
        "duration": _int(params.get("RecordingDuration"), 2_147_483_647),
        "channels": _int(params.get("RecordingChannels"), 32_767),
        "source": param_text(params, "RecordingSource")[:32],
        "media_url": param_text(params, "RecordingUrl")[:300],
    }
    for name, value in fields.items():
        if value not in (None, "") and getattr(recording, name) != value:
            setattr(recording, name, value)
            update.append(name)
    if update:
        recording.save(update_fields=update)


def _int(value, limit: int) -> int | None:
    number = param_int(value)
    return number if number is not None and number <= limit else None


def recording_media_path(*, tenant: Tenant, recording: Recording) -> str:
    """The audio's path at Twilio, built from the SID and the tenant's own account (never the
    URL a callback carried): MP3, which every browser plays."""
    return f"/2010-04-01/Accounts/{tenant.account_sid}/Recordings/{recording.sid}.mp3"


def recording_audio_open(*, tenant: Tenant, recording: Recording, range_header: str = "") -> requests.Response:
    """Open the recording's audio at Twilio with the tenant's credentials, forwarding `Range`.
    The caller streams the body and closes it. Raises TwilioError when Twilio can't be reached."""
    headers = {"Range": range_header[:100]} if range_header else {}
    return tenant_media_get(tenant, recording_media_path(tenant=tenant, recording=recording), headers=headers)


def recordings_remote_delete(*, tenant: Tenant, sids: list[str]) -> tuple[int, int]:
    """Delete recordings at Twilio (retention, erasure): (deleted, failed). One already gone
    (404) counts as deleted; a failure is logged (the row is deleted here already: delete it
    in Twilio's console)."""
    try:
        with twilio_errors():
            client = tenant_client(tenant)
    except TwilioError:
        return 0, len(sids)
    done, failures = twilio_each(sids, lambda sid: client.recordings(sid).delete())
    for _, exc in failures:
        logger.warning("voice.recording.remote_delete_failed", extra={"tenant": tenant.slug, "code": exc.code})
    return done, len(failures)
