"""christmas_spiders.errors.one_line: an exception as one line, whatever its message."""

from __future__ import annotations

import psycopg2
import pytest
import sqlalchemy as sa

from christmas_spiders.errors import one_line


def test_the_first_line_of_a_message_of_several() -> None:
    assert one_line(ValueError("bad price\n  in row 3\n")) == "bad price"


def test_blank_leading_lines_are_skipped() -> None:
    assert one_line(RuntimeError("\n   \n  the real reason  \nmore")) == "the real reason"


@pytest.mark.parametrize("message", ["", "   ", "\n\n", "\t\n "])
def test_an_empty_message_gives_the_class_name(message: str) -> None:
    assert one_line(ConnectionResetError(message)) == "ConnectionResetError"


def test_an_error_without_arguments_gives_the_class_name() -> None:
    assert one_line(TimeoutError()) == "TimeoutError"


def test_the_drivers_error_is_preferred_to_sqlalchemys_wrapper() -> None:
    engine = sa.create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none")  # nothing listens
    try:
        with pytest.raises(sa.exc.OperationalError) as caught:
            engine.connect()
    finally:
        engine.dispose()
    error = caught.value
    assert "\n" in str(error.orig).strip()  # psycopg2's message spans several lines
    line = one_line(error)
    assert line == str(error.orig).strip().splitlines()[0]
    assert "Connection refused" in line and "[SQL" not in line and "sqlalche.me" not in line


def test_a_wrapped_error_without_a_message_gives_the_drivers_class_name() -> None:
    error = sa.exc.OperationalError("SELECT 1", {}, psycopg2.OperationalError())
    assert one_line(error) == "OperationalError"


def test_an_error_without_orig_is_described_itself() -> None:
    error = sa.exc.TimeoutError("QueuePool limit of size 1 overflow 0 reached, timeout 0.50")
    assert one_line(error) == "QueuePool limit of size 1 overflow 0 reached, timeout 0.50"


def test_a_wrapper_whose_orig_is_none_is_described_itself() -> None:
    error = sa.exc.DBAPIError("SELECT 1", {}, None)
    assert one_line(error) == "(builtins.NoneType) None"
