"""The sending policy form: quiet hours, region windows, caps and pace, checked against the law
before they are saved."""

from __future__ import annotations

import re
from datetime import time

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.functional import cached_property

from ..compliance.gate import region_rules
from ..compliance.regions import STATUTORY_WINDOWS, region_name, statutory_rules
from ..models import SendingPolicy

# --- Sending policy -------------------------------------------------------------------------------

# ASCII digits only: `\d` also takes "٠٩" or "０９", which int() reads but time.fromisoformat and
# the gate don't. Whitespace stays Unicode on purpose: a no-break space pasted between region
# and window still separates them, and everything it separates is checked in ASCII.
_REGION_LINE = re.compile(r"(?P<region>\S+)\s+(?P<start>[^\s\-–]+)\s*[-–]\s*(?P<end>[^\s\-–]+)")
_REGION_CODE = re.compile(r"[A-Z]{2}(?:-[A-Z0-9]{1,3})?", re.ASCII)
_HH_MM = re.compile(r"(?P<h>[0-9]{1,2}):(?P<m>[0-9]{2})", re.ASCII)
MAX_FREQUENCY_CAP = 50
MAX_MESSAGES_PER_SECOND = 100
#: The fields the window checks read together.
_WINDOW_FIELDS = ("quiet_start", "quiet_end", "region_windows")


def _hh_mm(value: time) -> str:
    return value.strftime("%H:%M")


def _window(bounds: tuple[time, time]) -> str:
    return f"{_hh_mm(bounds[0])}-{_hh_mm(bounds[1])}"


def _clock(text: str) -> str | None:
    """`text` as a zero-padded "HH:MM" when it is a time of day (00:00-23:59), else None."""
    match = _HH_MM.fullmatch(text)
    if not match or int(match["h"]) > 23 or int(match["m"]) > 59:
        return None
    return f"{int(match['h']):02d}:{match['m']}"


def _and(items: list[str]) -> str:
    """ "A", "A and B", "A, B and C"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _place(region: str) -> str:
    """ "Florida (US-FL)"."""
    return f"{region_name(region) or region} ({region})"


def region_windows_text(windows) -> str:
    """The stored `region_windows` dict as the form's lines, by region code. An entry the gate
    can't read is shown as stored, so saving refuses it instead of silently dropping it."""
    lines = []
    for region, bounds in sorted((windows or {}).items()):
        if isinstance(bounds, list | tuple) and len(bounds) == 2:
            lines.append(f"{region} {bounds[0]}-{bounds[1]}")
        else:
            lines.append(f"{region} {bounds}")
    return "\n".join(lines)


def _readable_windows(windows) -> dict[str, list[str]]:
    """The entries of a stored `region_windows` the gate applies (it skips the others)."""
    readable = {}
    for region, bounds in (windows or {}).items():
        if isinstance(bounds, list | tuple) and len(bounds) == 2:
            low, high = (_clock(str(b)) for b in bounds)
            if low and high and low < high:
                readable[str(region).upper()] = [low, high]
    return readable


class RegionWindowsField(forms.CharField):
    """`region_windows` as text, one "REGION HH:MM-HH:MM" line per region ("US-CA 09:00-20:00"),
    cleaned to the dict the gate reads: {"US-CA": ["09:00", "20:00"]}."""

    widget = forms.Textarea(attrs={"rows": 4, "class": "font-monospace", "placeholder": "US-CA 09:00-20:00"})

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("strip", True)
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return value if isinstance(value, str) else region_windows_text(value)

    def to_python(self, value):
        text = super().to_python(value)
        windows: dict[str, list[str]] = {}
        errors = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line:
                continue
            problem = self._line_problem(line, windows)
            if problem:
                errors.append(
                    forms.ValidationError(
                        "Line %(number)s (“%(line)s”): %(problem)s",
                        code="invalid_line",
                        params={"number": number, "line": line, "problem": problem},
                    )
                )
        if errors:
            raise forms.ValidationError(errors)
        return windows

    @staticmethod
    def _line_problem(line: str, windows: dict[str, list[str]]) -> str:
        """What is wrong with one line ('' when nothing is); a good line is added to `windows`."""
        match = _REGION_LINE.fullmatch(line)
        if not match:
            return "write a region, then its window, e.g. “US-CA 09:00-20:00”."
        region = match["region"].upper()
        start, end = _clock(match["start"]), _clock(match["end"])
        problems = []
        if not _REGION_CODE.fullmatch(region):
            problems.append(
                f"“{match['region']}” is not a region code: use a country (FR) or a US or Canadian "
                "state or province (US-FL, CA-QC)"
            )
        elif region_name(region) is None:
            country, dash, _ = region.partition("-")
            if not dash:
                problems.append(f"{region} is not a country code (ISO 3166, e.g. FR, DE)")
            elif country == "US":
                problems.append(f"{region} is not a US state (e.g. US-CA)")
            elif country == "CA":
                problems.append(f"{region} is not a Canadian province or territory (e.g. CA-QC)")
            else:
                problems.append(
                    f"only US and Canadian numbers tell their state or province: use the country ({country})"
                )
        elif region in windows:
            problems.append(f"{region} is listed twice: keep one window per region")
        if start is None or end is None:
            problems.append("times are written HH:MM, between 00:00 and 23:59, e.g. 09:00-20:00")
        elif start >= end:
            problems.append(f"the window must open before it closes ({start} is not before {end})")
        if problems:
            return "; ".join(problems) + "."
        windows[region] = [start, end]
        return ""


class SendingPolicyForm(forms.ModelForm):
    """A tenant's sending policy. Validation refuses what the gate would silently ignore or what
    would hold messages forever: a window that never opens, a window that misses a statutory
    window altogether (the law's would apply there instead, outside the hours chosen), a region
    line that would close the window in its region or in a subdivision under it.

    Every field carries the value it was loaded with (a hidden `initial-<name>` input), so
    `changed_data` means "what this admin edited", not "what differs from the row now": another
    admin may have saved since the form was shown, and `changes()` leaves their values alone.
    The window checks read this admin's edits together with the row as it is now."""

    region_windows = RegionWindowsField(
        label="Stricter windows by region",
        help_text=(
            "One region per line: a country (FR) or a US or Canadian state or province (US-CA), then its "
            "local window, e.g. “US-CA 09:00-20:00”. These only narrow the window above and the law's "
            "windows; they never widen them. French overseas departments have codes of their own "
            "(RE, GP, MQ, GF, YT…): FR is metropolitan France."
        ),
    )

    class Meta:
        model = SendingPolicy
        fields = [
            "quiet_start",
            "quiet_end",
            "region_windows",
            "frequency_cap",
            "informational_follows_marketing_rules",
            "messages_per_second",
        ]
        labels = {
            "quiet_start": "Window opens (recipient's local time)",
            "quiet_end": "Window closes (recipient's local time)",
            "frequency_cap": "Frequency cap",
            "informational_follows_marketing_rules": "Informational messages follow the marketing rules",
            "messages_per_second": "Messages per second, per sender",
        }
        help_texts = {
            "quiet_start": "HH:MM. Marketing messages go from this time on; earlier ones wait.",
            "quiet_end": "HH:MM, after the opening. Marketing messages stop at this time (it is not included).",
            "informational_follows_marketing_rules": (
                "Hold informational messages for the window, the cap and pending revocation reviews too. "
                "OTP and transactional messages are never held."
            ),
            "messages_per_second": (
                "More than 0, at most 100. Carriers meter each sender: US long codes take about 1/s, "
                "toll-free numbers about 3/s, short codes 100/s."
            ),
        }
        widgets = {
            "quiet_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "quiet_end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.show_hidden_initial = True
        cap = self.fields["frequency_cap"]
        cap.min_value, cap.max_value = 0, MAX_FREQUENCY_CAP
        cap.widget.attrs.update(min=0, max=MAX_FREQUENCY_CAP)
        cap.validators = [MinValueValidator(0), MaxValueValidator(MAX_FREQUENCY_CAP)]
        statutory = ", ".join(f"{r.name} ({r.region}) {r.cap}" for r in statutory_rules() if r.cap)
        cap.help_text = (
            f"Most marketing messages per number per 24 hours, 0 to {MAX_FREQUENCY_CAP}. 0 = no cap of your own: "
            f"statutory caps still apply whatever you set here ({statutory or 'none at present'})."
        )
        rate = self.fields["messages_per_second"]
        rate.widget.attrs.update(min=0, max=MAX_MESSAGES_PER_SECOND, step="any")

    @cached_property
    def changed_data(self) -> list[str]:
        """Django's, except that a field posted without its `initial-` twin (a script, a page
        rendered before the twins) counts as edited: compared with an empty initial instead,
        clearing the region lines would look like no change at all."""
        if not self.is_bound:
            return []
        return [
            name
            for name, bound in self._bound_items()
            if bound.html_initial_name not in self.data or bound._has_changed()
        ]

    def changes(self) -> dict:
        """The cleaned values of the fields this admin edited: what `sending_policy_update` gets."""
        return {name: self.cleaned_data[name] for name in self.changed_data if name in self.cleaned_data}

    def _clean_clock(self, name: str) -> time | None:
        value = self.cleaned_data.get(name)
        if value is None:
            return value
        initial = self.initial.get(name)
        if isinstance(initial, str):
            try:
                initial = time.fromisoformat(initial)
            except ValueError:
                initial = None
        if initial and value == initial.replace(second=0, microsecond=0):
            return initial  # shown as HH:MM and sent back untouched: keep the stored precision
        if value.second or value.microsecond:
            raise forms.ValidationError("Enter hours and minutes only (HH:MM).", code="seconds")
        return value

    def clean_quiet_start(self):
        return self._clean_clock("quiet_start")

    def clean_quiet_end(self):
        return self._clean_clock("quiet_end")

    def clean_messages_per_second(self):
        rate = self.cleaned_data.get("messages_per_second")
        if rate is not None and not 0 < rate <= MAX_MESSAGES_PER_SECOND:
            raise forms.ValidationError(
                "Enter a rate above 0 and at most %(max)s messages per second.",
                code="rate",
                params={"max": MAX_MESSAGES_PER_SECOND},
            )
        return rate

    def _once_saved(self, name: str):
        """`name`'s value once this form is saved: this admin's when they edited it, else the
        row's as it is now (another admin may have changed it since the form was shown)."""
        if name in self.changed_data or self.instance.pk is None:
            return self.cleaned_data.get(name)
        value = getattr(self.instance, name)
        if name == "region_windows":
            return _readable_windows(value)
        return value if isinstance(value, time) or value is None else time.fromisoformat(str(value))

    def clean(self):
        cleaned = super().clean()
        if not any(name in self.changed_data for name in _WINDOW_FIELDS):
            return cleaned  # e.g. only the cap: a window saved earlier is the page's to flag
        start, end = self._once_saved("quiet_start"), self._once_saved("quiet_end")
        if start is None or end is None:
            return cleaned
        if start >= end:
            self.add_error(
                "quiet_end",
                forms.ValidationError(
                    "The window must open before it closes: %(start)s-%(end)s never opens, so every marketing "
                    "message would wait forever.",
                    code="window",
                    params={"start": _hh_mm(start), "end": _hh_mm(end)},
                ),
            )
            return cleaned
        if self._check_window_meets_the_law(start, end):
            self._check_region_windows_apply(start, end, self._once_saved("region_windows") or {})
        return cleaned

    def _check_window_meets_the_law(self, start: time, end: time) -> bool:
        """Refuse a window that misses a statutory window altogether: it applies everywhere, so
        in that region no moment would be both allowed by the tenant and by the law."""
        candidate = SendingPolicy(quiet_start=start, quiet_end=end, region_windows={})
        missed: dict[str, list[str]] = {}  # the law's window -> the regions where it is that
        for region in sorted(STATUTORY_WINDOWS):
            rules = region_rules(policy=candidate, region=region)
            if rules.policy_window_disjoint:
                missed.setdefault(_window(rules.law), []).append(_place(region))
        if missed:
            where = "; ".join(f"in {_and(places)}, where it is {law}" for law, places in missed.items())
            self.add_error(
                "quiet_end",
                forms.ValidationError(
                    "%(start)s-%(end)s misses the law's window altogether %(where)s: no marketing message could go "
                    "there within your hours. Choose a window that overlaps it.",
                    code="law",
                    params={"start": _hh_mm(start), "end": _hh_mm(end), "where": where},
                ),
            )
        return not missed

    def _check_region_windows_apply(self, start: time, end: time, windows: dict[str, list[str]]) -> None:
        """Refuse a region line the gate would ignore somewhere: one that misses the window
        otherwise in force in its region (the policy's, narrowed by the law's and the other
        lines) or, for a country, in a subdivision under it that the law or another line sets
        apart ("US 20:15-21:00" misses Florida's 08:00-20:00)."""
        candidate = SendingPolicy(quiet_start=start, quiet_end=end, region_windows=windows)
        for region, (low, high) in windows.items():
            under = sorted(p for p in {*STATUTORY_WINDOWS, *windows} if p.startswith(f"{region}-"))
            for place in [region, *under]:
                rules = region_rules(policy=candidate, region=place)
                if region not in rules.lines_ignored:
                    continue
                others = {k: v for k, v in windows.items() if k != region}
                without = region_rules(
                    policy=SendingPolicy(quiet_start=start, quiet_end=end, region_windows=others), region=place
                )
                law = f", the law's {_window(rules.law)}" if rules.law else ""
                self.add_error(
                    "region_windows",
                    forms.ValidationError(
                        "%(region)s %(low)s-%(high)s misses the window that applies in %(place)s otherwise, "
                        "%(open)s-%(close)s (your window%(law)s and your other lines): the gate would ignore "
                        "it there.",
                        code="ignored",
                        params={
                            "region": region,
                            "low": low,
                            "high": high,
                            "place": _place(place),
                            "open": _hh_mm(without.window[0]),
                            "close": _hh_mm(without.window[1]),
                            "law": law,
                        },
                    ),
                )
