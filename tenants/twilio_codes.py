"""Twilio error codes by name, defined once for every app.

Code that reacts to a particular Twilio answer (an opt-out at 21610, throttling at 20429) names
it from here, and the explanation table and retry policy in `tenants.twilio_errors` are keyed by
the same names, so a code is never spelled as a bare number twice. Meanings follow Twilio's
error dictionary (https://www.twilio.com/docs/api/errors).
"""

from __future__ import annotations

# --- Account and API -----------------------------------------------------------------------------
AUTHENTICATION_FAILED = 20003
RESOURCE_NOT_FOUND = 20404
TOO_MANY_REQUESTS = 20429
INTERNAL_SERVER_ERROR = 20500
SERVICE_UNAVAILABLE = 20503
SUBACCOUNT_SUSPENDED_BY_TWILIO = 21478

# --- Sending: the request ------------------------------------------------------------------------
INVALID_TO_NUMBER = 21211
GEO_PERMISSION_DENIED = 21408
FROM_MISSING = 21603
TO_MISSING = 21604
FROM_CANNOT_REACH_DESTINATION = 21606
TRIAL_UNVERIFIED_RECIPIENT = 21608
#: The recipient texted STOP to this sender: Twilio refuses every send until they text START.
OPTED_OUT = 21610
UNROUTABLE_FROM_TO_PAIR = 21612
TO_NOT_MOBILE = 21614
BODY_TOO_LONG = 21617
SERVICE_NOT_FOUND = 21701
SERVICE_HAS_NO_SENDER = 21703

# --- Sending: delivery ---------------------------------------------------------------------------
QUEUE_OVERFLOW = 30001
ACCOUNT_SUSPENDED = 30002
UNREACHABLE_DESTINATION = 30003
MESSAGE_BLOCKED = 30004
UNKNOWN_DESTINATION = 30005
LANDLINE_OR_UNREACHABLE_CARRIER = 30006
CARRIER_FILTERED = 30007
UNKNOWN_ERROR = 30008
TOLL_FREE_NOT_VERIFIED = 30032
UNREGISTERED_10DLC = 30034
VALIDITY_PERIOD_EXPIRED = 30036
COMPLIANCE_RESCHEDULE_FAILED = 30047

# --- Verify --------------------------------------------------------------------------------------
VERIFY_INVALID_PARAMETER = 60200
VERIFY_MAX_CHECK_ATTEMPTS = 60202
VERIFY_MAX_SEND_ATTEMPTS = 60203
VERIFY_TOO_MANY_CONCURRENT = 60212

# --- WhatsApp and limits -------------------------------------------------------------------------
WHATSAPP_OUTSIDE_SESSION = 63016
DAILY_MESSAGE_LIMIT = 63038

# --- Webhooks ------------------------------------------------------------------------------------
WEBHOOK_HTTP_ERROR = 11200
WEBHOOK_CONNECTION_FAILED = 11205
