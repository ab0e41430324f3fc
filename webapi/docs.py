"""The API's docs page without any CDN: Swagger UI's files come from the flask-swagger-ui
wheel (only its bundled `dist/` folder is used) and are served by the API itself."""

from __future__ import annotations

from importlib import resources

from flask import Blueprint, send_from_directory

ASSETS_URL = "/docs/assets/"
_DIST = resources.files("flask_swagger_ui") / "dist"

blueprint = Blueprint("docs_assets", __name__)


@blueprint.get(ASSETS_URL + "<path:filename>")
def asset(filename: str):
    return send_from_directory(str(_DIST), filename, max_age=86400)


# flask-smorest serves the OpenAPI document and renders the Swagger UI page with these.
API_CONFIG = {
    "API_TITLE": "project_christmas API",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": ASSETS_URL,
    "OPENAPI_SWAGGER_UI_CONFIG": {"persistAuthorization": True},
}
