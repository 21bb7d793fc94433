"""The virtual phone's pages, for a person: call one of the sandbox's numbers, read what the
call says and plays, press keys, leave a message, hang up. Plain forms that post to the control
endpoints (`html=1` brings the browser back here); no scripts and no inline styles, so the pages
keep to the same Content-Security-Policy as the portal. Development only, like the sandbox."""

from __future__ import annotations

from html import escape
from typing import Any

from .http import Reply, SandboxRequest
from .voice import VoiceApi

CSP = "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
KEYPAD = "123456789*0#"
CSS = """body { font-family: system-ui, sans-serif; margin: 1.5rem; max-width: 48rem; color: #1d2125; }
table { border-collapse: collapse; width: 100%; } td, th { border-bottom: 1px solid #dde; padding: .3rem .5rem; }
form { margin: .5rem 0; } .keypad { display: grid; grid-template-columns: repeat(3, 4rem); gap: .4rem; }
.keypad button { font-size: 1.4rem; padding: .6rem 0; } .said { font-style: italic; }
.event { color: #5a6470; } .error { color: #b00020; } .status { font-weight: bold; }
"""


def page(title: str, body: str, *, refresh: bool = False) -> Reply:
    head = '<meta http-equiv="refresh" content="1">' if refresh else ""
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{head}'
        f'<title>{escape(title)}</title><link rel="stylesheet" href="/sandbox/phone.css"></head>'
        f"<body><main>{body}</main></body></html>"
    )
    return Reply(200, html, headers={"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": CSP})


def form(action: str, fields: str, button: str) -> str:
    hidden = '<input type="hidden" name="html" value="1">'
    return f'<form method="post" action="{escape(action)}">{hidden}{fields}{button}</form>'


def transcript_line(entry: dict[str, Any]) -> str:
    """One line of what the caller heard or did."""
    verb, event = entry.get("verb"), entry.get("event")
    if verb == "Say":
        voice = f" ({escape(entry['voice'])}, {escape(entry['language'])})" if entry.get("voice") else ""
        return f'<li>Says{voice}: <span class="said">“{escape(entry["text"])}”</span></li>'
    if verb == "Play":
        return f"<li>Plays {escape(entry['url'] or entry.get('digits', ''))}</li>"
    if verb == "Gather":
        return "<li>Waits for keys</li>"
    if verb == "Record":
        return "<li>Beep: recording a message</li>"
    if verb == "Dial":
        target, caller_id = escape(entry["number"]), escape(entry["caller_id"])
        return f"<li>Forwards to {target} (caller ID {caller_id}): {entry['status']}</li>"
    if verb:
        details = escape(entry.get("url") or entry.get("reason") or str(entry.get("seconds", "")))
        return f"<li>{escape(verb)} {details}</li>"
    if event == "keys":
        return f'<li class="event">You pressed {escape(entry["digits"])}</li>'
    if event == "error":
        return f'<li class="error">Error {entry["code"]}: {escape(entry["message"])}</li>'
    if event == "request":
        return f'<li class="event">{escape(entry["method"])} {escape(entry["url"])} → {entry["status"]}</li>'
    text = {"timeout": "You stayed silent", "hangup": f"Hung up by {entry.get('by', '')}"}.get(event or "", "")
    if event == "speech":
        text = f"You spoke for {entry['seconds']} s"
    elif event == "recording":
        text = f"Recording {entry['sid']}: {entry['status']}, {entry['duration']} s"
    return f'<li class="event">{escape(text)}</li>'


class PhonePages(VoiceApi):
    """GET /sandbox/phone (place a call, list calls) and /sandbox/phone/<CallSid> (one call)."""

    def _h_ctl_phone_css(self, req: SandboxRequest) -> Reply:
        return Reply(200, CSS, headers={"Content-Type": "text/css; charset=utf-8"})

    def _h_ctl_phone_page(self, req: SandboxRequest) -> Reply:
        with self._lock:
            numbers = [n for n in self._sorted(self._numbers.values()) if n["voice_url"]]
            names = {sid: a.friendly_name for sid, a in self._accounts.items()}
            calls = [self._call_json(c) for c in self._sorted(self._calls.values(), reverse=True)]
        options = "".join(
            f'<option value="{escape(n["phone_number"])}">{escape(n["phone_number"])} '
            f"({escape(names.get(n['account_sid'], ''))})</option>"
            for n in numbers
        )
        rows = "".join(
            f'<tr><td><a href="/sandbox/phone/{c["sid"]}">{c["sid"][-8:]}</a></td><td>{escape(c["direction"])}</td>'
            f"<td>{escape(c['from'])}</td><td>{escape(c['to'])}</td><td>{escape(c['status'])}</td></tr>"
            for c in calls
        )
        fields = (
            '<label>From <input name="From" value="+14155550199" required></label> '
            f'<label>To <select name="To" required>{options}</select></label> '
        )
        body = (
            "<h1>Sandbox phone</h1><p>Call one of the sandbox's numbers: its voice URL is fetched, signed, "
            "as Twilio would. Calls the portal places ring here too.</p>"
            + (form("/sandbox/calls/incoming", fields, "<button>Call</button>") if numbers else "<p>No numbers.</p>")
            + '<h2>Calls</h2><p><a href="/sandbox/phone">Refresh</a></p>'
            + f"<table><tr><th>Call</th><th>Direction</th><th>From</th><th>To</th><th>Status</th></tr>{rows}</table>"
        )
        return page("Sandbox phone", body)

    def _h_ctl_phone_call_page(self, req: SandboxRequest) -> Reply:
        sid = req.params["Sid"]
        view = self._call_view(sid)
        actions, base = "", f"/sandbox/calls/{sid}"
        if view["waiting_for"] == "digits":
            keys = "".join(f'<button name="digits" value="{k}">{k}</button>' for k in KEYPAD)
            actions += form(f"{base}/digits", f'<div class="keypad">{keys}</div>', "")
            typed = '<label>Keys <input name="digits" inputmode="tel"></label> '
            actions += form(f"{base}/digits", typed, "<button>Send</button>")
            actions += form(f"{base}/timeout", "", "<button>Stay silent (timeout)</button>")
        elif view["waiting_for"] == "recording":
            speak = '<input type="hidden" name="seconds" value="5">'
            finish = '<input type="hidden" name="digits" value="#">'
            actions += form(f"{base}/speak", speak, "<button>Speak for 5 s</button>")
            actions += form(f"{base}/digits", finish, "<button>Press # to finish</button>")
            actions += form(f"{base}/timeout", "", "<button>Stay silent (timeout)</button>")
        live = view["status"] not in {"completed", "busy", "no-answer", "failed", "canceled"}
        if view["waiting_for"]:
            actions += form(f"{base}/hangup", "", "<button>Hang up</button>")
        lines = "".join(transcript_line(e) for e in view["transcript"])
        body = (
            f'<p><a href="/sandbox/phone">All calls</a></p><h1>{escape(view["from"])} → {escape(view["to"])}</h1>'
            f'<p>{escape(view["direction"])}, <span class="status">{escape(view["status"])}</span>'
            f"{', ' + view['duration'] + ' s' if view['duration'] else ''}</p>"
            f"<ol>{lines}</ol>{actions}"
        )
        # Ringing or between steps: look again shortly (no script needed).
        return page(f"Call {sid[-8:]}", body, refresh=live and not view["waiting_for"])
