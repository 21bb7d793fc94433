"""Recordings in the portal: the audio streamed from Twilio with the tenant's credentials (the
Twilio URL never reaches the browser; `Range` is forwarded so the player can seek), and the
audited unmask support staff need before they may play one.

A recording is a customer's voice, so support staff are treated as with a number: they see that
a recording exists, and play it only after writing down why (`support.unmask_recording` in the
tenant's audit log). The permission lasts `UNMASK_MINUTES` in their session, for that recording.
"""

from __future__ import annotations

import time

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from messaging.forms.ledgers import UnmaskForm
from tenants.http import audit_context
from tenants.middleware import support_action
from tenants.phones import phone_mask
from tenants.services import audit_record
from tenants.twilio import TwilioError

from ..calls import log
from ..calls.recordings import STREAMED_HEADERS, recording_audio_open

UNMASK_SESSION_KEY = "voice.recordings.unmasked"
UNMASK_MINUTES = 30
CHUNK_BYTES = 64 * 1024


def recordings_unmasked(request) -> set[int]:
    """Ids of the recordings this support user unmasked in the last `UNMASK_MINUTES`."""
    now = time.time()
    granted = request.session.get(UNMASK_SESSION_KEY) or {}
    return {int(pk) for pk, until in granted.items() if until > now}


def _grant(request, recording_id: int) -> None:
    now = time.time()
    granted = {pk: until for pk, until in (request.session.get(UNMASK_SESSION_KEY) or {}).items() if until > now}
    granted[str(recording_id)] = now + UNMASK_MINUTES * 60
    request.session[UNMASK_SESSION_KEY] = granted


def _chunks(upstream):
    try:
        yield from upstream.iter_content(CHUNK_BYTES)
    finally:
        upstream.close()


@never_cache
@require_GET
def recording_audio(request, recording_id: int):
    """The recording's audio, streamed from Twilio (206 for a `Range` request)."""
    tenant = request.tenant
    recording = log.recording_get(tenant=tenant, recording_id=recording_id)
    if request.tenant_access.masks_numbers and recording.pk not in recordings_unmasked(request):
        raise PermissionDenied("Support staff play a recording after unmasking it with a reason.")
    try:
        upstream = recording_audio_open(
            tenant=tenant, recording=recording, range_header=request.headers.get("Range", "")
        )
    except TwilioError:
        return HttpResponse("Twilio could not be reached: try again.\n", status=502, content_type="text/plain")
    if upstream.status_code == 404:
        upstream.close()
        raise Http404("Twilio no longer holds this recording")
    if upstream.status_code not in (200, 206, 416):
        upstream.close()
        return HttpResponse("Twilio refused the recording.\n", status=502, content_type="text/plain")
    response = StreamingHttpResponse(_chunks(upstream), status=upstream.status_code)
    for name in STREAMED_HEADERS:
        if name in upstream.headers:
            response[name] = upstream.headers[name]
    if not response.get("Content-Type", "").startswith("audio/"):
        response["Content-Type"] = "audio/mpeg"
    response["Content-Disposition"] = f'inline; filename="{recording.sid}.mp3"'
    response["Cache-Control"] = "private, no-store"  # a customer's voice: never kept by a proxy
    return response


@support_action
@never_cache
@require_http_methods(["GET", "POST"])
def recording_unmask(request, recording_id: int):
    """Support staff write down why they need to hear one recording; audited, then it plays."""
    if not request.tenant_access.masks_numbers:
        raise PermissionDenied("You may already play recordings: only support staff unmask.")
    tenant = request.tenant
    recording = log.recording_get(tenant=tenant, recording_id=recording_id)
    form = UnmaskForm(request.POST or None)
    unmasked = recording.pk in recordings_unmasked(request)
    if request.method == "POST" and form.is_valid():
        call = recording.call
        audit_record(
            action="support.unmask_recording",
            tenant=tenant,
            audit=audit_context(request),
            target=f"recording {recording.sid}" + (f" (call with {phone_mask(call.from_number)})" if call else ""),
            reason=form.cleaned_data["reason"],
        )
        _grant(request, recording.pk)
        unmasked = True
    return render(
        request,
        "voice/recording_unmask.html",
        {"tenant": tenant, "recording": recording, "form": form, "unmasked": unmasked},
    )
