"""TwiML for voice, run as Twilio's voice engine runs it, for the sandbox's calls.

`parse_twiml` reads a document the way Twilio does before running any of it: the root must be
`<Response>`, every verb known, nested only where Twilio allows, attributes well-formed; a
broken document is error 12100 (not XML) or 12200 (not valid TwiML) and the caller hears
"an application error has occurred" before the call ends.

`CallSession` runs the verbs for one call: `Say`, `Play`, `Pause` (recorded in the transcript;
nothing waits in real time), `Gather` (the call waits for keys: `press`, or `timeout`, which
falls through to the next verb unless `actionOnEmptyResult`), `Record` (waits for the caller
to `speak`, press a `finishOnKey` key, fall silent or hang up; a recording with audio is posted
to `action` and to `recordingStatusCallback`; an empty one is `absent` and the next verb runs),
`Dial`, `Redirect`, `Hangup`, `Reject` (before answering only: the call ends busy or no-answer).
Everything that touches the network or the sandbox's records goes through a `Line` (see
`sandbox.phone`), so the interpreter is tested without either.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin

DIGIT_KEYS = frozenset("0123456789*#")
VERBS = {"Say", "Play", "Pause", "Gather", "Dial", "Record", "Redirect", "Hangup", "Reject"}
GATHER_NESTABLE = {"Say", "Play", "Pause"}
DIAL_NOUNS = {"Number", "Client", "Sip"}
SSML_TAGS = {"break", "emphasis", "lang", "p", "phoneme", "prosody", "s", "say-as", "sub", "w", "amazon:effect"}
METHODS = {"GET", "POST"}
RECORDING_EVENTS = {"in-progress", "completed", "absent"}
# Documents fetched in a row without the caller doing anything: a Redirect loop ends the call.
MAX_DOCUMENTS = 25
APPLICATION_ERROR = "We are sorry, an application error has occurred. Goodbye."

# Attributes that must be whole numbers, per verb, and their smallest allowed value.
INTEGER_ATTRIBUTES = {
    "Say": {"loop": 0},
    "Play": {"loop": 0},
    "Pause": {"length": 0},
    "Gather": {"numDigits": 1, "timeout": 1},
    "Record": {"timeout": 0, "maxLength": 1},
    "Dial": {"timeout": 1, "timeLimit": 1},
}


class TwimlError(Exception):
    """A document Twilio would refuse: `code` is Twilio's error code (12100, 12200, 11200)."""

    def __init__(self, code: int, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def parse_twiml(text: str) -> list[ET.Element]:
    """The verbs of a voice TwiML document, validated; raises `TwimlError`."""
    try:
        root = ET.fromstring(text.strip())
    except ET.ParseError as exc:
        raise TwimlError(12100, f"Document parse failure: {exc}") from None
    if root.tag != "Response":
        raise TwimlError(12100, f"The root element must be <Response>, not <{root.tag}>")
    verbs = list(root)
    for verb in verbs:
        _check_verb(verb)
    return verbs


def _check_verb(verb: ET.Element, parent: str | None = None) -> None:
    if verb.tag not in VERBS:
        raise TwimlError(12200, f"<{verb.tag}> is not a voice TwiML verb")
    if parent == "Gather" and verb.tag not in GATHER_NESTABLE:
        raise TwimlError(12200, f"<{verb.tag}> cannot be nested in <Gather>")
    for name, minimum in INTEGER_ATTRIBUTES.get(verb.tag, {}).items():
        value = verb.get(name)
        if value is not None and not (value.strip().isdigit() and int(value) >= minimum):
            raise TwimlError(12200, f"<{verb.tag} {name}={value!r}> must be a whole number >= {minimum}")
    for name in ("method", "recordingStatusCallbackMethod"):
        if verb.get(name) is not None and verb.get(name, "").upper() not in METHODS:
            raise TwimlError(12200, f"<{verb.tag} {name}> must be GET or POST")
    finish = verb.get("finishOnKey")
    if finish is not None and not set(finish) <= DIGIT_KEYS:
        raise TwimlError(12200, f"<{verb.tag} finishOnKey={finish!r}> may only hold 0-9, * and #")
    if verb.tag == "Gather" and finish is not None and len(finish) > 1:
        raise TwimlError(12200, "<Gather finishOnKey> is one key (or empty)")
    events = set((verb.get("recordingStatusCallbackEvent") or "completed").replace(",", " ").split())
    if not events <= RECORDING_EVENTS:
        raise TwimlError(12200, f"recordingStatusCallbackEvent may only list {', '.join(sorted(RECORDING_EVENTS))}")
    if verb.tag == "Reject" and verb.get("reason", "rejected") not in {"rejected", "busy"}:
        raise TwimlError(12200, "<Reject reason> must be rejected or busy")
    if verb.tag == "Redirect" and not (verb.text or "").strip():
        raise TwimlError(12200, "<Redirect> needs a URL")
    if verb.tag == "Dial":
        _check_dial(verb)
    elif verb.tag == "Gather":
        for child in verb:
            _check_verb(child, "Gather")
    elif verb.tag == "Say":
        for tag in {child.tag for child in verb.iter()} - {"Say"} - SSML_TAGS:
            raise TwimlError(12200, f"<Say> cannot hold <{tag}>")
    elif len(verb):
        raise TwimlError(12200, f"<{verb.tag}> cannot hold <{verb[0].tag}>")


def _check_dial(verb: ET.Element) -> None:
    for child in verb:
        if child.tag not in DIAL_NOUNS:
            raise TwimlError(12200, f"<Dial><{child.tag}> is not supported by the sandbox")
    if not (len(verb) or (verb.text or "").strip()):
        raise TwimlError(12200, "<Dial> needs a number")


class Line(Protocol):
    """What a call session needs from the sandbox: the signed requests, the call's status,
    the Recording and child-call resources, the recording status callbacks."""

    def request(self, kind: str, url: str, method: str, extra: dict[str, str]) -> tuple[int | None, str]:
        """A signed request with the call's parameters plus `extra`: (HTTP status or None, body)."""

    def answer(self) -> None:
        """The call is answered (in-progress)."""

    def end(self, status: str) -> None:
        """The call is over with this final status."""

    def recording_start(self) -> dict[str, Any]:
        """A new Recording resource, in-progress: at least `sid` and `url`."""

    def recording_finish(self, sid: str, status: str, duration: int) -> None:
        """The recording ended: completed (with audio) or absent."""

    def recording_callback(self, sid: str, url: str, method: str) -> None:
        """Post the recording's status callback (signed) to `url`."""

    def dial(self, target: str, caller_id: str) -> dict[str, Any]:
        """Place the dialled leg: `status`, `sid`, `duration`."""

    def caller_id(self) -> str:
        """The caller ID a `<Dial>` without one shows: the caller's number."""


@dataclass
class Document:
    """The verbs still to run from one fetched document, and its URL (relative URLs resolve
    against it; `None` for TwiML given inline)."""

    verbs: list[ET.Element]
    url: str | None


@dataclass
class Waiting:
    """Where the call stands while the caller must act: at a Gather or a Record."""

    verb: ET.Element
    rest: Document
    recording: dict[str, Any] | None = None
    audio_seconds: int = 0


@dataclass
class CallSession:
    """One call's run through its TwiML. `answered` starts True for a call already answered
    (outbound); an inbound call is answered by its first verb other than `<Reject>`."""

    line: Line
    answered: bool = False
    transcript: list[dict[str, Any]] = field(default_factory=list)
    waiting: Waiting | None = None
    ended: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)

    # ------------------------------------------------------------------ what drives a call

    def start(self, url: str, method: str = "POST", fallback: tuple[str, str] | None = None) -> None:
        """Fetch the call's first document from `url` and run it until the caller must act;
        when that fails, from the number's `fallback` (URL, method), as Twilio does."""
        self._run(self._fetch("voice-url", url, method, {}, fallback=fallback))

    def start_twiml(self, text: str) -> None:
        """Run TwiML given inline (the Calls API's `Twiml`)."""
        try:
            self._run(Document(parse_twiml(text), None))
        except TwimlError as err:
            self._fail(err.code, err.message)

    def press(self, digits: str) -> None:
        """The caller presses keys; an empty string is silence until the timeout."""
        waiting = self._require_waiting()
        self.transcript.append({"event": "keys", "digits": digits} if digits else {"event": "timeout"})
        if waiting.verb.tag == "Gather":
            self._gather_input(waiting, digits)
            return
        finish_keys = waiting.verb.get("finishOnKey", "1234567890*#")
        pressed = next((key for key in digits if key in finish_keys), None)
        if pressed is not None or not digits:
            self._record_done(waiting, pressed or "")

    def timeout(self) -> None:
        """The caller stays silent until the Gather's or the Record's timeout."""
        self.press("")

    def speak(self, seconds: int) -> None:
        """The caller talks `seconds` into a Record (ends it at `maxLength`)."""
        waiting = self._require_waiting()
        if waiting.verb.tag != "Record":
            raise ValueError("the call is not recording: speech only counts during <Record>")
        waiting.audio_seconds += seconds
        self.transcript.append({"event": "speech", "seconds": seconds})
        if waiting.audio_seconds >= int(waiting.verb.get("maxLength", "3600")):
            self._record_done(waiting, "")

    def hangup(self, by: str = "caller") -> None:
        """The caller (or the API) hangs up; a Record in progress is still delivered."""
        if self.ended:
            return
        self.transcript.append({"event": "hangup", "by": by})
        waiting, self.waiting = self.waiting, None
        self._end("completed")
        if waiting is not None and waiting.verb.tag == "Record":
            self._record_done(waiting, "hangup", hung_up=True)

    def _require_waiting(self) -> Waiting:
        if self.waiting is None:
            raise ValueError("the call is not waiting for the caller" if not self.ended else "the call has ended")
        return self.waiting

    # ------------------------------------------------------------------ the interpreter

    def _run(self, document: Document | None) -> None:
        fetched = 0
        while document is not None and not self.ended:
            fetched += 1
            if fetched > MAX_DOCUMENTS:
                self._fail(11200, f"More than {MAX_DOCUMENTS} documents without input from the caller")
                return
            document = self._run_document(document)

    def _run_document(self, document: Document) -> Document | None:
        """Run verbs until one leads elsewhere (a new document), waits, or ends the call."""
        while document.verbs:
            verb = document.verbs.pop(0)
            if verb.tag != "Reject" and not self.answered:
                self._answer()
            handler = getattr(self, "_verb_" + verb.tag.lower())
            outcome = handler(verb, document)
            if outcome is not None or self.waiting is not None or self.ended:
                return outcome
        if not self.answered:
            self._answer()
        self._end("completed")
        return None

    def _answer(self) -> None:
        self.answered = True
        self.line.answer()

    def _end(self, status: str) -> None:
        if self.ended is None:
            self.ended = status
            self.waiting = None
            self.line.end(status)

    def _fail(self, code: int, message: str) -> None:
        """What Twilio does with a document it can't fetch or run: apologise and hang up."""
        self.errors.append({"code": code, "message": message})
        self.transcript.append({"event": "error", "code": code, "message": message})
        if not self.ended:
            if not self.answered:
                self._answer()
            self.transcript.append({"verb": "Say", "text": APPLICATION_ERROR, "voice": "", "language": "en-US"})
            self._end("completed")

    def _fetch(
        self, kind: str, url: str | None, method: str, extra: dict[str, str], *, fallback: tuple[str, str] | None = None
    ) -> Document | None:
        """The next document from `url` (signed, with the call's parameters and `extra`); on
        failure the `fallback` URL is asked, with `ErrorCode` and `ErrorUrl`."""
        if not url:
            self._fail(11100, f"No URL to request for the {kind}")
            return None
        document, error = self._get(kind, url, method, extra)
        if error is not None and fallback and fallback[0]:
            self.errors.append(error)
            self.transcript.append({"event": "error", **error})
            failed = {"ErrorCode": str(error["code"]), "ErrorUrl": url}
            document, error = self._get("voice-fallback", fallback[0], fallback[1], {**extra, **failed})
        if error is not None:
            self._fail(error["code"], error["message"])
        return document

    def _get(
        self, kind: str, url: str, method: str, extra: dict[str, str]
    ) -> tuple[Document | None, dict[str, Any] | None]:
        status, body = self.line.request(kind, url, method, extra)
        self.transcript.append({"event": "request", "kind": kind, "url": url, "method": method, "status": status})
        if status is None or not 200 <= status < 300:
            return None, {"code": 11200, "message": f"HTTP retrieval failure: {url} answered {status or 'nothing'}"}
        try:
            return Document(parse_twiml(body), url), None
        except TwimlError as err:
            return None, {"code": err.code, "message": err.message}

    @staticmethod
    def _url(document: Document, verb: ET.Element, name: str = "action") -> str | None:
        """A verb's URL attribute resolved against the document (Twilio: relative is fine)."""
        value = verb.get(name)
        if value is None:
            return document.url
        return urljoin(document.url, value) if document.url else value

    @staticmethod
    def _method(verb: ET.Element, name: str = "method") -> str:
        return (verb.get(name) or "POST").upper()

    # ------------------------------------------------------------------ verbs

    def _verb_say(self, verb: ET.Element, document: Document, within: str | None = None) -> None:
        entry = {
            "verb": "Say",
            "text": " ".join("".join(verb.itertext()).split()),
            "voice": verb.get("voice", ""),
            "language": verb.get("language", "en-US"),
            "loop": int(verb.get("loop", "1")),
        }
        self.transcript.append({**entry, "within": within} if within else entry)

    def _verb_play(self, verb: ET.Element, document: Document, within: str | None = None) -> None:
        entry = {"verb": "Play", "url": (verb.text or "").strip(), "loop": int(verb.get("loop", "1"))}
        if verb.get("digits"):
            entry["digits"] = verb.get("digits")
        self.transcript.append({**entry, "within": within} if within else entry)

    def _verb_pause(self, verb: ET.Element, document: Document, within: str | None = None) -> None:
        entry = {"verb": "Pause", "seconds": int(verb.get("length", "1"))}
        self.transcript.append({**entry, "within": within} if within else entry)

    def _verb_hangup(self, verb: ET.Element, document: Document) -> None:
        self.transcript.append({"verb": "Hangup"})
        self._end("completed")

    def _verb_reject(self, verb: ET.Element, document: Document) -> None:
        reason = verb.get("reason", "rejected")
        self.transcript.append({"verb": "Reject", "reason": reason})
        # Only an unanswered call can be refused; after answering Reject just hangs up.
        if self.answered:
            self._end("completed")
        else:
            self._end("busy" if reason == "busy" else "no-answer")

    def _verb_redirect(self, verb: ET.Element, document: Document) -> Document | None:
        target = (verb.text or "").strip()
        url = urljoin(document.url, target) if document.url else target
        self.transcript.append({"verb": "Redirect", "url": url})
        return self._fetch("redirect", url, self._method(verb), {})

    def _verb_gather(self, verb: ET.Element, document: Document) -> None:
        self.transcript.append(
            {
                "verb": "Gather",
                "input": verb.get("input", "dtmf"),
                "num_digits": int(verb.get("numDigits")) if verb.get("numDigits") else None,
                "timeout": int(verb.get("timeout", "5")),
                "finish_on_key": verb.get("finishOnKey", "#"),
                "action": self._url(document, verb),
            }
        )
        for child in verb:
            getattr(self, "_verb_" + child.tag.lower())(child, document, within="Gather")
        self.waiting = Waiting(verb=verb, rest=document)

    def _gather_input(self, waiting: Waiting, digits: str) -> None:
        verb = waiting.verb
        finish = verb.get("finishOnKey", "#")
        wanted = int(verb.get("numDigits")) if verb.get("numDigits") else None
        collected, finished_on = "", ""
        for key in digits:
            if finish and key == finish:
                finished_on = key
                break
            collected += key
            if wanted and len(collected) >= wanted:
                break
        self.waiting = None
        # No digits (silence, or only the finish key): Twilio falls through to the next verb.
        if not collected and verb.get("actionOnEmptyResult", "false").lower() != "true":
            self._run(waiting.rest)
            return
        extra = {"Digits": collected, "FinishedOnKey": finished_on, "msg": "Gather End"}
        self._run(self._fetch("gather-action", self._url(waiting.rest, verb), self._method(verb), extra))

    def _verb_record(self, verb: ET.Element, document: Document) -> None:
        recording = self.line.recording_start()
        self.transcript.append(
            {
                "verb": "Record",
                "recording_sid": recording["sid"],
                "max_length": int(verb.get("maxLength", "3600")),
                "timeout": int(verb.get("timeout", "5")),
                "finish_on_key": verb.get("finishOnKey", "1234567890*#"),
                "play_beep": verb.get("playBeep", "true").lower() != "false",
                "action": self._url(document, verb),
            }
        )
        self.waiting = Waiting(verb=verb, rest=document, recording=recording)
        self._recording_event(verb, document, recording, "in-progress")

    def _record_done(self, waiting: Waiting, digits: str, *, hung_up: bool = False) -> None:
        """The recording ends: delivered with its audio, or absent (then the next verb runs)."""
        verb, recording, document = waiting.verb, waiting.recording or {}, waiting.rest
        self.waiting = None
        duration = min(waiting.audio_seconds, int(verb.get("maxLength", "3600")))
        status = "completed" if duration else "absent"
        self.line.recording_finish(recording["sid"], status, duration)
        self.transcript.append({"event": "recording", "sid": recording["sid"], "status": status, "duration": duration})
        if status == "absent":
            self._recording_event(verb, document, recording, "absent")
            if not hung_up:
                self._run(document)
            return
        extra = {
            "RecordingUrl": recording["url"],
            "RecordingSid": recording["sid"],
            "RecordingDuration": str(duration),
            "Digits": digits,
        }
        # After a hang-up the action is still requested; what it answers is not run.
        following = self._fetch("record-action", self._url(document, verb), self._method(verb), extra)
        self._recording_event(verb, document, recording, "completed")
        if not hung_up:
            self._run(following)

    def _recording_event(self, verb: ET.Element, document: Document, recording: dict[str, Any], event: str) -> None:
        events = set((verb.get("recordingStatusCallbackEvent") or "completed").replace(",", " ").split())
        url = self._url(document, verb, "recordingStatusCallback") if verb.get("recordingStatusCallback") else None
        if url and event in events:
            self.line.recording_callback(recording["sid"], url, self._method(verb, "recordingStatusCallbackMethod"))

    def _verb_dial(self, verb: ET.Element, document: Document) -> Document | None:
        caller_id = verb.get("callerId") or self.line.caller_id()
        targets = [(child.text or "").strip() for child in verb] or [(verb.text or "").strip()]
        outcome: dict[str, Any] = {"status": "failed", "sid": "", "duration": 0}
        for target in targets:
            outcome = self.line.dial(target, caller_id)
            entry = {"verb": "Dial", "number": target, "caller_id": caller_id, "status": outcome["status"]}
            self.transcript.append({**entry, "call_sid": outcome["sid"]})
            if outcome["status"] == "completed":
                break
        if verb.get("action") is None:
            return None  # no action: the next verb runs (the call ends if there is none)
        extra = {
            "DialCallStatus": outcome["status"],
            "DialCallSid": outcome["sid"],
            "DialCallDuration": str(outcome["duration"]),
            "DialBridged": "true" if outcome["status"] == "completed" else "false",
        }
        return self._fetch("dial-action", self._url(document, verb), self._method(verb), extra)
