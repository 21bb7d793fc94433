"""A local stand-in for Twilio's REST API (the "sandbox"): a development and test app, never
installed in production (settings add it with DEBUG on or SANDBOX_ENABLED set).

Why: there is no internet here, and the portal must be exercised end to end with the real
twilio-python SDK: real HTTP, Basic auth, Twilio's error JSON (so the SDK raises
`TwilioRestException` with the right `.code`), Twilio's pagination, and status callbacks and
inbound webhooks signed exactly as Twilio signs them (`X-Twilio-Signature`, HMAC-SHA1 with the
account's current primary auth token). State is in memory, guarded by one lock.

Run it with `python manage.py twilio_sandbox` and set `TWILIO_API_BASE_URL` to the base URL it
prints; in tests use `sandbox.server.TwilioSandbox(...).start()` and point every SDK domain at `base_url`
(`client.api.base_url = sandbox.base_url`, same for verify, messaging, accounts) or use an
`http_client` that rewrites scheme and host. Every product lives on the one host: `/2010-04-01/…`
(api), `/v2/…` (Verify), `/v1/Services…` (Messaging), `/v1/AuthTokens…` (Accounts).

Authentication (HTTP Basic):
- `AccountSid:auth_token` of the parent or a known subaccount (primary or secondary token);
- `SK…:secret` of an API key the sandbox issued: it acts for its own account only and, like a
  Twilio *standard* key, may not manage accounts or keys;
- with `auto_register_accounts=True`, an unknown `AC` + 32 hex sid with any token is registered
  on first use as an active subaccount of the parent with that token.
- Anything else answers 401 / 20003. Credentials of a suspended or closed account also answer
  401 / 20003 (Twilio refuses them). The parent's credentials may act on its subaccounts' v2010
  resources; other cross-account requests answer 404 / 20404. The parent acting on a suspended or
  closed subaccount cannot send messages or place calls: 400 / 10001 "Account is not active".

Synchronous magic destinations (POST Messages.json with this `To` answers HTTP 400):
    +15005550001 -> 21211 invalid To       +15005550002 -> 21612 unsupported From/To pair
    +15005550003 -> 21408 region disabled  +15005550004 -> 21610 recipient opted out (STOP)
    +15005550009 -> 21614 To not a mobile number
Asynchronous outcomes (accepted, then status callbacks):
    +15005550010 -> sent, undelivered 30003     +15005550011 -> sent, undelivered 30006
    +15005550012 -> failed 30008                +15005550013 -> sent, undelivered 21610
    any other valid To -> sent, delivered (preceded by queued when sent via a Messaging Service)
Calls: +15005550020 -> busy, +15005550021 -> no-answer, +15005550022 -> failed; any other To
    rings, is answered (the call's Url is fetched, signed) and completes.

Other Twilio behaviours reproduced: `From` must be a number the account owns (21606; the magic
test sender +15005550006 is always accepted); a message sent through a Messaging Service answers
`accepted` with `from` null and gets its sender from the service's pool (21703 when empty);
inbound STOP/START keywords (via /sandbox/inbound) maintain Twilio's own opt-out list per sender
(or per Messaging Service), later sends answer 21610 until START; in-flight messages can't be
deleted (20009); call status callbacks follow `StatusCallbackEvent` (default: completed only);
a webhook is retried once on connection failure or timeout; Verify codes expire after 10 min,
5 wrong checks then 60202, more than 5 sends to one number within 10 min gives 60203.

SendGrid (sandbox/sendgrid.py): v3 mail send (`POST /v3/mail/send`, Bearer `sendgrid_api_key`;
401/403/400 like SendGrid) and its Event Webhook, signed with an ECDSA P-256 key pair the sandbox
holds (`sendgrid_public_key`); bounce@… bounces, spam@… is reported as spam, drop@… is dropped.

Sandbox control endpoints (not Twilio; no authentication; form or JSON bodies):
    GET    /sandbox/                          health and this list
    GET    /sandbox/accounts                  accounts (no tokens)
    POST   /sandbox/accounts/{AC}             register/flag an account: AuthToken, FriendlyName,
                                              twilio_suspended=true|false (Twilio-side suspension:
                                              status changes then answer 21478)
    POST   /sandbox/accounts/{AC}/numbers     seed a number: PhoneNumber (or AreaCode), SmsUrl,
                                              VoiceUrl, StatusCallback, FriendlyName, ...
    POST   /sandbox/faults                    inject a fault into the API requests that match
                                              (control endpoints never fail), JSON e.g.
                                              {"kind": "500" | "503" | "429" | "timeout",
                                               "count": N | "seconds": S,
                                               "path_contains": "/Messages.json",
                                               "method": "POST", "to": "+1..."}
                                              kind 500/503: Twilio's 5xx error JSON (the SDK
                                              cannot know whether it acted: "maybe sent");
                                              429: 20429 with Retry-After (nothing acted on);
                                              timeout: the connection is held unanswered for
                                              `stall_seconds` (default 30, longer than the
                                              client's read timeout) then closed; with
                                              "accept": true the request is processed first
                                              (the message exists: reconciliation must find
                                              it). `count`: the next N matching requests
                                              (default 1); `seconds`: every match for that
                                              long (both: whichever ends first). `to` narrows
                                              to one recipient, `path_contains`/`method` to a
                                              resource. Raw fields instead of kind: `status`,
                                              `code`, `message`, `mode` = error |
                                              accept_then_drop (processed, then the connection
                                              closes unanswered) | stall | accept_then_stall
    GET    /sandbox/faults, DELETE /sandbox/faults   pending faults; clear them
    GET    /sandbox/faults/injected           every fault served: {"at" (epoch s), "mode",
                                              "status", "method", "path", "to"}, oldest first
    POST   /sandbox/outage                    {"seconds"}: Twilio unreachable for that long: the
                                              listener closes (connections refused, control API
                                              too) and reopens on the same port afterwards;
                                              `outage_begin()`/`outage_end()` from Python
    GET    /sandbox/messages[?to=&account_sid=]   every stored message (JSON list)
    GET    /sandbox/calls                     every stored call
    POST   /sandbox/recordings                AccountSid, CallSid[, Duration]: a completed
                                              recording of that call (`recording_create()`
                                              from Python); its audio is silence, served at
                                              Recordings/{RE}.mp3|.wav with Range (206/416)
    GET    /sandbox/webhooks                  the last webhooks the sandbox sent, with outcomes
    GET    /sandbox/verify-codes?to=+1...     issued Verify codes, newest first
    POST   /sandbox/inbound                   AccountSid, From, To, Body[, Url]: POST a signed
                                              inbound-SMS webhook (Url defaults to the number's
                                              or its Messaging Service's inbound URL); answers
                                              {"status_code", "body", "url", "message_sid"}
    POST   /sandbox/reset                     forget everything but the parent account
    GET    /sandbox/sendgrid                  SendGrid keys, webhook public key, accepted mails
    POST   /sandbox/sendgrid                  {"event_webhook_url"}: where signed events go
    POST   /sandbox/sendgrid/events           a JSON array of events: signed and posted there

Layout, one module per Twilio product it stands in for: `accounts` (authentication,
subaccounts, API keys, auth-token rotation), `numbers`, `messaging` (Messages, Messaging
Services), `voice` (Calls), `recordings` (recording metadata and audio), `verify`, `sendgrid`
(mail send and its signed events), `callbacks`
(signed webhooks out), `control` (the endpoints above); `http` (server, routes, dispatch),
`paging`, `errors` and `state` are shared; `server.TwilioSandbox` puts them together.
"""
