"""The marshmallow fields and validators the configuration is read with, in our own words.

Every message is the end of a sentence whose start is the key: ``error_sentence`` puts the key
(``subscribers[2].name``) in front of marshmallow's first error, so a bad value still raises
``ConfigError`` with one sentence. A JSON ``null`` or a missing required key gets the field's own
sentence too (``…, not None.``), not marshmallow's "Field may not be null.".
"""

from __future__ import annotations

import contextlib
import decimal
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import marshmallow as ma
from marshmallow import ValidationError, fields, validate

from christmas_spiders.errors import ConfigError


def error_sentence(key: str, messages: Any) -> str:
    """'<key><path> <message>' for the first error of marshmallow's (nested) error messages."""
    while not isinstance(messages, str):
        if isinstance(messages, dict):
            step, messages = next(iter(messages.items()))
            key += f"[{step}]" if isinstance(step, int) else "" if step == "_schema" else f".{step}"
        else:
            messages = messages[0]
    return f"{key} {messages}"


def read_value(key: str, reader: fields.Field, value: Any) -> Any:
    """One value read by one field, outside a schema; ConfigError naming `key` if it is bad."""
    try:
        return reader.deserialize(value)
    except ValidationError as error:
        raise ConfigError(error_sentence(key, error.messages)) from None


class OwnSentences:
    """Null or missing input fails with the field's own 'invalid' sentence, like any bad value."""

    def make_error(self, key: str, **kwargs: Any) -> ValidationError:
        if key in ("null", "required"):
            key, kwargs = "invalid", {"input": None}
        return super().make_error(key, **kwargs)  # type: ignore[misc]


class String(OwnSentences, fields.String):
    """A string; anything else fails with the field's sentence (which may quote the input)."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid": "must be a string, not {input!r}."
    }

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid", input=value)
        return value


# marshmallow's number fields: not a number, or one too large for a float.
_NUMBER_ERRORS = {
    "invalid": "must be a number, not {input!r}.",
    "too_large": "must be a number, not {input!r}.",
}


class Integer(OwnSentences, fields.Integer):
    """A whole number, from a JSON number or from text (an environment variable)."""

    default_error_messages: ClassVar[dict[str, str]] = {
        **_NUMBER_ERRORS,
        "whole": "must be a whole number, not {input!r}.",
    }

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        number = super()._deserialize(value, attr, data, **kwargs)
        if isinstance(value, float) and value != number:  # int() would silently truncate 2.5
            raise self.make_error("whole", input=value)
        return number


class Float(OwnSentences, fields.Float):
    default_error_messages: ClassVar[dict[str, str]] = {
        **_NUMBER_ERRORS,
        "special": "must be a finite number.",
    }


class Decimal(OwnSentences, fields.Field):
    """A finite decimal number; a JSON number is read through its text (20.1 stays 20.1)."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid": "must be a number, not {input!r}."
    }

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> decimal.Decimal:
        number = None
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            with contextlib.suppress(decimal.InvalidOperation):
                number = decimal.Decimal(str(value))
        if number is None or not number.is_finite():
            raise self.make_error("invalid", input=value)
        return number


class Boolean(OwnSentences, fields.Boolean):
    """true/false, 1/0, yes/no, on/off, in any case."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid": "must be true or false, not {input!r}."
    }
    truthy: ClassVar[set[object]] = {"true", "1", "yes", "on", True}
    falsy: ClassVar[set[object]] = {"false", "0", "no", "off", False}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        text = value.strip().lower() if isinstance(value, str) else value
        try:
            return super()._deserialize(text, attr, data, **kwargs)
        except ValidationError:
            raise self.make_error("invalid", input=value) from None


class Raw(OwnSentences, fields.Raw):
    pass


class List(OwnSentences, fields.List):
    pass


class Object(OwnSentences, fields.Nested):
    """A JSON object read by a `Strict` schema."""

    default_error_messages: ClassVar[dict[str, str]] = {"invalid": "must be an object."}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Strict(ma.Schema):
    """An object whose keys are all known ("$comment" aside); `check` adds whole-object rules."""

    unknown_key = "has unknown key {key!r}; known: {known}."

    def allowed(self, data: dict[str, Any]) -> list[str]:
        """The keys the object may hold: every field, unless a subclass narrows it."""
        return [field.data_key or name for name, field in self.load_fields.items()]

    def check(self, data: dict[str, Any]) -> None:
        """Rules of the object as a whole, checked after its keys and before its values."""

    @ma.pre_load
    def known_keys(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        data = {key: value for key, value in data.items() if key != "$comment"}
        allowed = self.allowed(data)
        unknown = [key for key in data if key not in allowed]
        if unknown:
            raise ValidationError(self.unknown_key.format(key=unknown[0], known=", ".join(allowed)))
        self.check(data)
        return data


class Known(validate.Validator):
    """Every item of a collection (every key of a mapping) is one of `choices`. The error may
    name {first} (the first unknown item), {unknown} (all of them) and {choices}."""

    def __init__(self, choices: Iterable[str], error: str) -> None:
        self.choices = tuple(choices)
        self.error = error

    def __call__(self, value: Iterable[Any]) -> Iterable[Any]:
        unknown = [item for item in value if item not in self.choices]
        if unknown:
            raise ValidationError(
                self.error.format(
                    first=unknown[0],
                    unknown=", ".join(map(str, unknown)),
                    choices=", ".join(self.choices),
                )
            )
        return value


def between(minimum: float, maximum: float) -> validate.Range:
    return validate.Range(minimum, maximum, error="must be between {min} and {max}, not {input!r}.")


def integer(minimum: int, maximum: int, **kwargs: Any) -> Integer:
    return Integer(validate=between(minimum, maximum), **kwargs)


def number(minimum: float, maximum: float) -> Float:
    return Float(validate=between(minimum, maximum))


def matching(pattern: str, message: str, **kwargs: Any) -> String:
    """A string matching `pattern` from its start; `message` (which may quote {input}) if not."""
    return String(
        validate=validate.Regexp(pattern, error=message),
        error_messages={"invalid": message},
        **kwargs,
    )


def text(*, upper: bool = False) -> String:
    """A string that is not blank, stripped (and upper-cased)."""
    tidy = [str.strip, str.upper] if upper else [str.strip]
    return matching(r"\s*\S", "must be a non-empty string, not {input!r}.", post_load=tidy)


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


def url(schemes: tuple[str, ...], *, optional: bool = False) -> String:
    """A URL with one of `schemes` (only the scheme is checked); optional: blank or null is None."""
    return matching(
        rf"(?i)(?:{'|'.join(schemes)}):",
        f"must be a URL starting with {' or '.join(schemes)}://.",
        allow_none=optional,
        pre_load=_blank_is_none if optional else None,
    )


def env_name() -> String:
    return matching(
        r"[A-Za-z_][A-Za-z0-9_]*\Z", "must name an environment variable, not {input!r}."
    )


class Choice(String):
    """One of a few words, in any case (stored upper- or lower-case)."""

    def __init__(self, choices: tuple[str, ...], *, upper: bool = False) -> None:
        super().__init__(
            error_messages={"invalid": f"must be one of {', '.join(choices)}, not {{input!r}}."}
        )
        self.choices, self.upper = choices, upper

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        word = str(value).upper() if self.upper else str(value).lower()
        if word not in self.choices:
            raise self.make_error("invalid", input=value)
        return word


class Folder(OwnSentences, fields.Field):
    """A folder path; a relative one is taken from `root`."""

    default_error_messages: ClassVar[dict[str, str]] = {
        "invalid": "must be a folder path, not {input!r}."
    }

    def __init__(self, root: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = root

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Path:
        if not isinstance(value, str | Path) or not str(value).strip():
            raise self.make_error("invalid", input=value)
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path


def _unique(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(items))


def names(
    choices: Iterable[str], *, invalid: str, unknown: str, allow_empty: bool = False, **kwargs: Any
) -> List:
    """A list of names from `choices`, as a tuple without repeats (messages: see `Known`)."""
    return List(
        Raw(allow_none=True),  # a null or a number is reported as an unknown name
        validate=[
            validate.Length(min=0 if allow_empty else 1, error=invalid),
            Known(choices, unknown),
        ],
        error_messages={"invalid": invalid},
        post_load=_unique,
        **kwargs,
    )


def from_json(value: Any) -> Any:
    """A structured key given as text (from the environment) is JSON; read it first."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise ValidationError(f"is not valid JSON ({error.msg}).") from None
