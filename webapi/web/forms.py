"""The pages' query strings: validated like the API's (the same fields and messages,
`webapi.errors.Parser`), so a bad value gives a 400 page that says which, never a 500.

Empty form fields count as not given, so a form submitted with blanks searches everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from flask import request, url_for
from marshmallow import fields, validate
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import MultiDict

from christmas_spiders.vendors import VENDORS
from webapi import errors, schemas
from webapi.web import queries

MAX_PAGE = 400
MAX_SKU = 64


class _FormParser(errors.Parser):
    """The API's parser (400 naming the parameter), reading blank form fields as not given."""

    def load_querystring(self, req, schema: ma.Schema) -> MultiDictProxy:
        given = MultiDict(
            (name, value.strip()) for name, value in req.args.items(multi=True) if value.strip()
        )
        return MultiDictProxy(given, schema, known_multi_fields=tuple(self.KNOWN_MULTI_FIELDS))


_parser = _FormParser()


def _shop(**kwargs) -> fields.String:
    return fields.String(
        validate=validate.OneOf(list(VENDORS), error="unknown shop {input!r}."), **kwargs
    )


class SearchArgs(schemas.Query):
    q = schemas.text(metadata={"description": "Words of the name, each a word prefix."})
    sku = schemas.text(MAX_SKU)
    series = schemas.text()
    year = fields.Integer(validate=validate.Range(schemas.YEAR_MIN, schemas.YEAR_MAX))
    shop = _shop()
    in_stock = fields.Boolean(load_default=False)
    page = fields.Integer(load_default=1, validate=validate.Range(1, MAX_PAGE))

    @ma.validates_schema
    def _words(self, data: dict[str, Any], **_kwargs) -> None:
        schemas.require_word(data, "q")


class ChangesArgs(schemas.Query):
    days = fields.Integer(load_default=7, validate=validate.Range(1, 365))
    shop = _shop()
    event = schemas.choices(queries.EVENTS)
    before = schemas.record_id()


def arguments(schema: ma.Schema) -> dict[str, Any]:
    """This request's query string, read with `schema` (a 400 page when it does not fit)."""
    return _parser.parse(schema, request, location="query")


def page_url(endpoint: str, args: Mapping[str, Any], **changes: Any) -> str:
    """This page's URL with the same parameters, some changed."""
    params = {name: value for name, value in {**args, **changes}.items() if value is not None}
    if params.get("page") == 1:
        del params["page"]
    if "in_stock" in params:
        if params["in_stock"]:
            params["in_stock"] = 1
        else:
            del params["in_stock"]
    return url_for(endpoint, **params)
