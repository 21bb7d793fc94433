"""A tenant's phone numbers: sync from Twilio, webhook drift, fix, search, buy and release.

Twilio is the source of truth; `PhoneNumber` rows are the last synced snapshot. Drift means a
URL Twilio would call for this number is not the portal's endpoint. Which URL counts depends on
Messaging Service membership: a service that uses its own inbound settings
(`use_inbound_webhook_on_number` false, the default for new services) posts inbound SMS to the
service's `inbound_request_url` and ignores the number's SmsUrl, so that is what is checked and
fixed. A number's `StatusCallback` is Twilio's *call* status callback (message status comes per
message), so it must point at the voice status endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from .audit import AuditContext
from .models import PhoneNumber, Tenant
from .phones import phone_parse, tenant_phone_region
from .services import audit_record
from .twilio import TwilioError, tenant_client, twilio_errors

SYNC_PAGE_SIZE = 1000  # Twilio's maximum: fewest round trips


def webhook_urls() -> dict[str, str]:
    """The portal's public endpoints a number must point at."""
    base = settings.PUBLIC_BASE_URL
    return {
        "sms_url": base + reverse("webhook_messaging_inbound"),
        "voice_url": base + reverse("webhook_voice_inbound"),
        "status_callback": base + reverse("webhook_voice_status"),
    }


@dataclass
class SyncReport:
    """What one sync changed."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    total: int = 0

    def __str__(self) -> str:
        return (
            f"{self.total} numbers at Twilio: {len(self.created)} new, {len(self.updated)} updated, "
            f"{len(self.released)} no longer in the account"
        )


def _service_memberships(client, *, page_size: int) -> dict[str, dict]:
    """Number SID -> its Messaging Service's inbound settings."""
    membership: dict[str, dict] = {}
    for service in client.messaging.v1.services.stream(page_size=page_size):
        own_inbound = not bool(service.use_inbound_webhook_on_number)
        for member in client.messaging.v1.services(service.sid).phone_numbers.stream(page_size=page_size):
            membership[member.sid] = {
                "messaging_service_sid": service.sid,
                "service_uses_own_inbound": own_inbound,
                "service_inbound_url": service.inbound_request_url or "",
            }
    return membership


def _number_fields(record, membership: dict | None) -> dict:
    caps = record.capabilities or {}
    membership = membership or {
        "messaging_service_sid": "",
        "service_uses_own_inbound": False,
        "service_inbound_url": "",
    }
    return {
        "phone_number": record.phone_number,
        "friendly_name": (record.friendly_name or "")[:64],
        "sms": bool(caps.get("sms") or caps.get("SMS")),
        "mms": bool(caps.get("mms") or caps.get("MMS")),
        "voice": bool(caps.get("voice") or caps.get("Voice")),
        "sms_url": record.sms_url or "",
        "sms_method": (record.sms_method or "POST").upper(),
        "voice_url": record.voice_url or "",
        "voice_method": (record.voice_method or "POST").upper(),
        "status_callback": record.status_callback or "",
        **membership,
    }


def _upsert(*, tenant: Tenant, record, membership: dict | None, now) -> tuple[PhoneNumber, bool]:
    # Keyed by SID alone: Twilio (authenticated as this tenant's subaccount) says the number is
    # this account's now, e.g. after the parent moved it between subaccounts.
    return PhoneNumber.all_tenants.update_or_create(
        sid=record.sid,
        defaults={"tenant": tenant, "synced_at": now, "released_at": None, **_number_fields(record, membership)},
    )


def numbers_sync(*, tenant: Tenant, audit: AuditContext | None = None, page_size: int = SYNC_PAGE_SIZE) -> SyncReport:
    """Fetch every number of the tenant's account (all pages) and its Messaging Service
    membership; upsert the rows and mark the ones no longer at Twilio released. Raises
    `TwilioError` (nothing is changed then). Audited when someone asked for it (`audit` given);
    the scheduled sync passes none and leaves no event."""
    client = tenant_client(tenant)
    with twilio_errors():
        records = list(client.incoming_phone_numbers.stream(page_size=page_size))
        memberships = _service_memberships(client, page_size=page_size)
    report = SyncReport(total=len(records))
    now = timezone.now()
    with transaction.atomic():
        for record in records:
            number, created = _upsert(tenant=tenant, record=record, membership=memberships.get(record.sid), now=now)
            (report.created if created else report.updated).append(number.phone_number)
        gone = (
            PhoneNumber.objects.for_tenant(tenant)
            .filter(released_at__isnull=True)
            .exclude(sid__in=[r.sid for r in records])
        )
        report.released = list(gone.values_list("phone_number", flat=True))
        gone.update(released_at=now)
        if audit is not None:
            audit_record(
                action="number.sync",
                tenant=tenant,
                audit=audit,
                details={"total": report.total, "created": len(report.created), "released": len(report.released)},
            )
    return report


def messaging_service_check(*, tenant: Tenant, sid: str) -> None:
    """Raise ValidationError unless `sid` is a Messaging Service of the tenant's subaccount.

    A SID Twilio does not know makes every later send fail with 21701, so settings refuse it at
    save time; when Twilio cannot be asked, nothing is saved either (the check is the point).
    """
    try:
        with twilio_errors():
            tenant_client(tenant).messaging.v1.services(sid).fetch()
    except TwilioError as exc:
        if exc.code == 20404 or exc.status == 404:
            raise ValidationError(
                f"Twilio has no Messaging Service {sid} in this tenant's subaccount: check the SID "
                "(Twilio Console → Messaging → Services) and that it belongs to this tenant.",
                code="not_found",
            ) from exc
        if exc.code is None:
            raise ValidationError(
                "Twilio could not be reached to check this Messaging Service SID, so nothing was saved. "
                "Try again in a minute.",
                code="unreachable",
            ) from exc
        raise ValidationError(
            f"Twilio refused to confirm this Messaging Service SID (error {exc.code}): {exc.explanation}",
            code="refused",
        ) from exc


def numbers_list(*, tenant: Tenant, search: str = "", capability: str = "") -> QuerySet[PhoneNumber]:
    """The tenant's numbers still in its account, filtered by number/name and capability."""
    qs = PhoneNumber.objects.for_tenant(tenant).filter(released_at__isnull=True)
    search = search.strip()
    if search:
        digits = "".join(ch for ch in search if ch.isdigit())
        match = Q(friendly_name__icontains=search)
        if digits:
            match |= Q(phone_number__contains=digits)
        qs = qs.filter(match)
    if capability in ("sms", "mms", "voice"):
        qs = qs.filter(**{capability: True})
    return qs


def tenant_own_numbers(*, tenant: Tenant) -> frozenset[str]:
    """The tenant's own Twilio numbers, released ones included (old messages still name them):
    public business numbers, so `phone_for_viewer` never masks them."""
    return frozenset(PhoneNumber.objects.for_tenant(tenant).values_list("phone_number", flat=True))


def number_drift(number: PhoneNumber) -> list[str]:
    """Human descriptions of every way Twilio would not reach the portal for this number."""
    if number.is_released:
        return []
    want = webhook_urls()
    problems = []
    if number.sms:
        if number.service_uses_own_inbound:
            if number.service_inbound_url != want["sms_url"]:
                problems.append(
                    f"Inbound texts go to Messaging Service {number.messaging_service_sid}, whose inbound URL is "
                    f"{number.service_inbound_url or 'not set'} instead of {want['sms_url']}. The service uses its "
                    "own inbound settings, so the number's SMS URL is ignored: fixing the number alone changes "
                    "nothing — the service must be fixed (for every number in it)."
                )
        elif number.sms_url != want["sms_url"]:
            problems.append(
                f"SMS URL is {number.sms_url or 'empty'} instead of {want['sms_url']}: inbound texts, including "
                "STOP replies, never reach the portal."
            )
        elif number.sms_method != "POST":
            problems.append(f"SMS URL is called with {number.sms_method}; the portal accepts POST only.")
    if number.voice:
        if number.voice_url != want["voice_url"]:
            problems.append(
                f"Voice URL is {number.voice_url or 'empty'} instead of {want['voice_url']}: calls to this number "
                "never reach the portal's call flows."
            )
        elif number.voice_method != "POST":
            problems.append(f"Voice URL is called with {number.voice_method}; the portal accepts POST only.")
    if number.voice and number.status_callback != want["status_callback"]:
        problems.append(
            f"Status callback is {number.status_callback or 'empty'} instead of {want['status_callback']}: "
            "call outcomes for this number are not recorded."
        )
    return problems


def number_fix_webhooks(*, tenant: Tenant, number: PhoneNumber, audit: AuditContext) -> list[str]:
    """Point the resource Twilio actually uses at the portal: the Messaging Service's inbound
    URL when the service uses its own inbound settings, the number's URLs otherwise. Returns
    what changed (empty when nothing drifted). Audited as 'number.fix_webhooks'."""
    if number.tenant_id != tenant.pk:
        raise ValueError("number belongs to another tenant")
    want = webhook_urls()
    client = tenant_client(tenant)
    changed: list[str] = []
    number_params: dict[str, str] = {}
    if (
        number.sms
        and not number.service_uses_own_inbound
        and (number.sms_url != want["sms_url"] or number.sms_method != "POST")
    ):
        number_params.update(sms_url=want["sms_url"], sms_method="POST")
    if number.voice and (number.voice_url != want["voice_url"] or number.voice_method != "POST"):
        number_params.update(voice_url=want["voice_url"], voice_method="POST")
    if number.voice and number.status_callback != want["status_callback"]:
        number_params.update(status_callback=want["status_callback"], status_callback_method="POST")
    fix_service = number.sms and number.service_uses_own_inbound and number.service_inbound_url != want["sms_url"]
    with twilio_errors():
        if fix_service:
            client.messaging.v1.services(number.messaging_service_sid).update(
                inbound_request_url=want["sms_url"], inbound_method="POST"
            )
            changed.append(f"Messaging Service {number.messaging_service_sid} inbound URL")
        updated = client.incoming_phone_numbers(number.sid).update(**number_params) if number_params else None
    now = timezone.now()
    with transaction.atomic():
        if fix_service:
            PhoneNumber.objects.for_tenant(tenant).filter(messaging_service_sid=number.messaging_service_sid).update(
                service_inbound_url=want["sms_url"]
            )
            number.service_inbound_url = want["sms_url"]
        if updated is not None:
            membership = {
                "messaging_service_sid": number.messaging_service_sid,
                "service_uses_own_inbound": number.service_uses_own_inbound,
                "service_inbound_url": number.service_inbound_url,
            }
            for name, value in _number_fields(updated, membership).items():
                setattr(number, name, value)
            number.synced_at = now
            number.save()
            changed.extend(f"number {name.replace('_', ' ')}" for name in number_params if not name.endswith("method"))
        if changed:
            audit_record(
                action="number.fix_webhooks",
                tenant=tenant,
                audit=audit,
                target=number.sid,
                details={"changed": changed, "service": number.messaging_service_sid if fix_service else ""},
            )
    return changed


@dataclass(frozen=True)
class AvailableNumber:
    phone_number: str
    friendly_name: str
    locality: str
    region: str
    sms: bool
    mms: bool
    voice: bool


def numbers_search_available(
    *,
    tenant: Tenant,
    country: str,
    area_code: str | None = None,
    sms: bool = True,
    voice: bool = False,
    mms: bool = False,
    limit: int = 20,
) -> list[AvailableNumber]:
    """Local numbers Twilio offers in `country` (and area code) with the wanted capabilities."""
    filters: dict = {"limit": limit}
    if area_code:
        filters["area_code"] = area_code
    # Only required capabilities are sent: SmsEnabled=false would ask for numbers *without* SMS.
    for name, wanted in (("sms_enabled", sms), ("voice_enabled", voice), ("mms_enabled", mms)):
        if wanted:
            filters[name] = True
    with twilio_errors():
        found = tenant_client(tenant).available_phone_numbers(country.upper()).local.list(**filters)
    results = []
    for item in found:
        caps = item.capabilities or {}
        results.append(
            AvailableNumber(
                phone_number=item.phone_number,
                friendly_name=item.friendly_name or "",
                locality=item.locality or "",
                region=item.region or "",
                sms=bool(caps.get("sms") or caps.get("SMS")),
                mms=bool(caps.get("mms") or caps.get("MMS")),
                voice=bool(caps.get("voice") or caps.get("Voice")),
            )
        )
    return results


def number_buy(*, tenant: Tenant, phone_number: str, audit: AuditContext) -> PhoneNumber:
    """Buy `phone_number` for the tenant with its webhooks already pointing at the portal (one
    Twilio call, so there is never a window where a new number drops texts). Audited."""
    phone_number = phone_parse(phone_number, region=tenant_phone_region(tenant))
    want = webhook_urls()
    with twilio_errors():
        record = tenant_client(tenant).incoming_phone_numbers.create(
            phone_number=phone_number,
            sms_url=want["sms_url"],
            sms_method="POST",
            voice_url=want["voice_url"],
            voice_method="POST",
            status_callback=want["status_callback"],
            status_callback_method="POST",
        )
    with transaction.atomic():
        number, _ = _upsert(tenant=tenant, record=record, membership=None, now=timezone.now())
        audit_record(
            action="number.buy",
            tenant=tenant,
            audit=audit,
            target=number.sid,
            details={"phone_number": number.phone_number},
        )
    return number


def number_release(*, tenant: Tenant, number: PhoneNumber, confirm: str, audit: AuditContext) -> None:
    """Release the number at Twilio (irreversible: it can be bought by anyone afterwards).
    `confirm` must be the number typed out. Audited."""
    if number.tenant_id != tenant.pk:
        raise ValueError("number belongs to another tenant")
    try:
        typed = phone_parse(confirm, region=tenant_phone_region(tenant))
    except ValidationError:
        typed = ""
    if typed != number.phone_number:
        raise ValidationError(f"Type the number {number.phone_number} to confirm its release.")
    with twilio_errors():
        tenant_client(tenant).incoming_phone_numbers(number.sid).delete()
    with transaction.atomic():
        number.released_at = timezone.now()
        number.save(update_fields=["released_at"])
        audit_record(
            action="number.release",
            tenant=tenant,
            audit=audit,
            target=number.sid,
            details={"phone_number": number.phone_number},
        )


def numbers_sync_all() -> dict:
    """Sync every active tenant; one tenant's Twilio failure doesn't stop the others."""
    results = {"synced": 0, "failed": []}
    for tenant in Tenant.objects.filter(status=Tenant.Status.ACTIVE):
        try:
            numbers_sync(tenant=tenant)
            results["synced"] += 1
        except TwilioError as exc:
            results["failed"].append({"tenant": tenant.slug, "error": str(exc)})
    return results
