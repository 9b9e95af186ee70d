"""When a timer trigger fires: the next occurrence of an NCRONTAB expression, as the host's timer extension reads it.

The WebJobs timer extension (azure-webjobs-sdk-extensions, `CronSchedule` over the NCrontab library) takes six
fields, seconds first: second, minute, hour, day of month, month, day of week. Each field is `*`, a number, a
range `a-b`, a step `*/n` or `a-b/n`, or a list of those separated by commas; months and days of week may be
named (`JAN`, `MON`), day of week 0 or 7 is Sunday. A day is a match when both the day of month and the day of
week match (NCrontab ANDs them, unlike Vixie cron). Times are the machine's local time, as `func start`
evaluates them (WEBSITE_TIME_ZONE aside).
"""

from __future__ import annotations

import datetime

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# (lowest, highest, names from the lowest) per field.
_FIELDS = [(0, 59, None), (0, 59, None), (0, 23, None), (1, 31, None), (1, 12, _MONTHS), (0, 7, _DAYS)]


class ScheduleError(ValueError):
    """An expression the timer extension would refuse."""


def _value(text: str, low: int, names) -> int:
    if names and text.upper() in names:
        return low + names.index(text.upper())
    if not text.isdigit():
        raise ScheduleError(f"{text!r} is not a number")
    return int(text)


def _field(text: str, low: int, high: int, names) -> frozenset:
    allowed: set = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ScheduleError(f"{part!r}: the step must be a positive number")
        if span in ("*", "?"):
            first, last = low, high
        elif "-" in span:
            first, last = (_value(v, low, names) for v in span.split("-", 1))
        else:
            first = _value(span, low, names)
            last = high if step else first
        if not low <= first <= last <= high:
            raise ScheduleError(f"{part!r} is outside {low}-{high}")
        allowed.update(range(first, last + 1, step or 1))
    return frozenset(allowed)


class Schedule:
    """A parsed six-field NCRONTAB expression."""

    def __init__(self, expression: str):
        fields = expression.split()
        if len(fields) != 6:
            raise ScheduleError(f"{expression!r}: expected six fields, seconds first")
        try:
            parsed = [_field(text, *spec) for text, spec in zip(fields, _FIELDS)]
        except ScheduleError as e:
            raise ScheduleError(f"{expression!r}: {e}") from None
        self.expression = expression
        self.seconds, self.minutes, self.hours, self.days, self.months, weekdays = parsed
        self.weekdays = frozenset(d % 7 for d in weekdays)

    def next_after(self, moment: datetime.datetime) -> datetime.datetime:
        """The first occurrence strictly after `moment` (naive local time), within the next five years."""
        t = moment.replace(microsecond=0) + datetime.timedelta(seconds=1)
        limit = moment + datetime.timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + datetime.timedelta(days=32)).replace(day=1)
            elif t.day not in self.days or (t.isoweekday() % 7) not in self.weekdays:
                t = t.replace(hour=0, minute=0, second=0) + datetime.timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + datetime.timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + datetime.timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += datetime.timedelta(seconds=1)
            else:
                return t
        raise ScheduleError(f"{self.expression!r} never occurs")
