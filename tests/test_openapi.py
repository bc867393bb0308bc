"""The API's own documentation (issue 12 item 6), without a stack: the app is built from
default settings and driven without its lifespan (no database or Temporal is touched:
every request here is answered before a route needs them).

- ``/openapi.json``: every operation under ``/v1`` names its security scheme(s) and
  documents 401 and 422 (and its other errors) as ``application/problem+json`` with the
  one ``Problem`` schema; FastAPI's own validation schema is gone; the two schemes exist.
- The API's real error bodies validate against that schema.
- ``/docs`` and ``/redoc`` name no other origin, and their assets are served.
- Every problem slug the code can produce (found in the source, not only in the registry)
  has its section in ``docs/errcodes.md``, and its ``type`` resolves to a 200 page.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.docs import errcodes_path, parse_sections
from api.problems import PROBLEM_JSON
from ringflow.contracts.errors import PROBLEM_SLUGS, problem_type
from ringflow.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PROBLEM_REF = "#/components/schemas/Problem"
API_KEY = "test-openapi-key"

# Routes open to a party token (PartyToken), to the backend's key (BackendApiKey) or to both.
PARTY_ONLY = re.compile(
    r"^/v1/(me/|media/|calls/\{call_id\}/(answer|reject|pass|hang-up|cancel|actions|media))"
)
EITHER = {("post", "/v1/calls"), ("get", "/v1/calls/{call_id}"), ("get", "/v1/calls/{call_id}/timeline.svg")}
# a person's availability: the backend for any user of its tenant, or the user's own token (issue 10)
EITHER_PATHS = re.compile(r"^/v1/users/\{user_id\}/(do-not-disturb|quiet-hours|presence)$")


@pytest.fixture(scope="module")
def http() -> Iterator[TestClient]:
    # No ``with``: the lifespan (PostgreSQL pool, Temporal client) never runs.
    yield TestClient(create_app(Settings(api_key=API_KEY)), base_url="http://127.0.0.1:8080")


@pytest.fixture(scope="module")
def openapi(http: TestClient) -> dict[str, Any]:
    r = http.get("/openapi.json")
    assert r.status_code == 200
    return dict(r.json())


def _operations(openapi: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "patch", "delete"}:
                yield method, path, operation


def _is_problem(response: dict[str, Any]) -> bool:
    content = response.get("content", {})
    return list(content) == [PROBLEM_JSON] and content[PROBLEM_JSON]["schema"] == {"$ref": PROBLEM_REF}


def test_every_v1_operation_has_security_and_problem_responses(openapi: dict[str, Any]) -> None:
    v1 = [(m, p, op) for m, p, op in _operations(openapi) if p.startswith("/v1/")]
    assert len(v1) >= 40, [f"{m} {p}" for m, p, _ in v1]
    for method, path, op in v1:
        label = f"{method.upper()} {path}"
        schemes = sorted(name for requirement in op.get("security", []) for name in requirement)
        if (method, path) in EITHER or EITHER_PATHS.match(path):
            assert schemes == ["BackendApiKey", "PartyToken"], label
        elif PARTY_ONLY.match(path):
            assert schemes == ["PartyToken"], label
        else:
            assert schemes == ["BackendApiKey"], label
        responses = op["responses"]
        # 422 wherever there is input to validate (4 list routes take none, and never answer 422)
        for status in ("401", "422") if op.get("parameters") or "requestBody" in op else ("401",):
            assert _is_problem(responses.get(status, {})), (label, status, responses.get(status))
        assert "WWW-Authenticate" in responses["401"]["headers"], label
        if "requestBody" in op:
            assert _is_problem(responses.get("413", {})), label
        errors = {s: r for s, r in responses.items() if int(s) >= 400}
        assert all(_is_problem(r) for r in errors.values()), (label, errors)
        if "{" in path and method != "put":
            assert "404" in responses, label  # a resource named in the path is looked up


def test_specific_problem_responses(openapi: dict[str, Any]) -> None:
    place = openapi["paths"]["/v1/calls"]["post"]["responses"]
    assert {"200", "201", "403", "404", "409", "429"} <= set(place)
    assert "Retry-After" in place["429"]["headers"] and "idempotency-conflict" in place["409"]["description"]
    assert {"403", "404", "409", "503"} <= set(
        openapi["paths"]["/v1/calls/{call_id}/answer"]["post"]["responses"]
    )
    assert "409" in openapi["paths"]["/v1/devices"]["post"]["responses"]
    assert "409" in openapi["paths"]["/v1/users/{user_id}"]["delete"]["responses"]


def test_problem_schema_replaces_fastapis_validation_schema(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    problem = schemas["Problem"]
    assert set(problem["required"]) == {"type", "title", "status"}
    assert {"type", "title", "status", "detail", "instance", "errCode", "errors"} <= set(
        problem["properties"]
    )
    assert problem["additionalProperties"] is True  # extra members (kind, field, checks, ...)
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert "HTTPValidationError" not in str(openapi)


def test_security_schemes(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["BackendApiKey"] | {"description": ""} == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "",
    }
    assert schemes["PartyToken"]["type"] == "http" and schemes["PartyToken"]["scheme"] == "bearer"
    # the key is a security scheme now, not a plain header parameter
    for _, _, op in _operations(openapi):
        assert all(p["name"].lower() != "x-api-key" for p in op.get("parameters", []))


def _validator(openapi: dict[str, Any]) -> Any:
    return jsonschema_rs.validator_for({"$ref": PROBLEM_REF, "components": openapi["components"]})


def test_documented_examples_match_the_schema(openapi: dict[str, Any]) -> None:
    validator = _validator(openapi)
    seen = set()
    for method, path, op in _operations(openapi):
        for status, response in op["responses"].items():
            example = response.get("content", {}).get(PROBLEM_JSON, {}).get("example")
            if example is not None:
                validator.validate(example)
                assert str(example["status"]) == status, (method, path, status)
                seen.add(example["type"])
    assert {"/problems/idempotency-conflict", "/problems/device-exists", "/problems/not-ready"} <= seen


def test_error_bodies_match_the_documented_schema(http: TestClient, openapi: dict[str, Any]) -> None:
    key = {"X-API-Key": API_KEY}
    cases = [
        (http.get("/v1/devices"), 401, "unauthenticated"),
        (http.get("/v1/devices", headers={"X-API-Key": ""}), 401, "unauthenticated"),
        (http.get("/v1/devices", headers={"X-API-Key": "wrong"}), 401, "unauthenticated"),
        (http.get("/v1/me/calls", headers={"Authorization": "Bearer nonsense"}), 401, "unauthenticated"),
        (http.get("/v1/calls/x"), 401, "unauthenticated"),
        (http.post("/v1/tokens", json={"party": {"kind": "nobody"}}, headers=key), 422, "validation"),
        (http.post("/v1/tokens", content=b"x" * 70_000, headers=key), 413, "payload-too-large"),
        (http.get("/v1/nothing-here"), 404, "not-found"),
        (http.delete("/v1/tokens", headers=key), 405, "method-not-allowed"),
    ]
    validator = _validator(openapi)
    for r, status, slug in cases:
        assert r.status_code == status, (r.request.url, r.text)
        assert r.headers["content-type"] == PROBLEM_JSON
        doc = r.json()
        assert doc["type"] == problem_type(slug) == f"/problems/{slug}", doc
        validator.validate(doc)
        if status == 401:
            assert r.headers["www-authenticate"] == "Bearer" and doc["errCode"] == 1011
        if status == 422:
            assert doc["errors"] and doc["errors"][0]["loc"][0] == "body"


class _Refs(HTMLParser):
    """Every URL a page refers to (src, href) and its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_docs_pages_name_no_other_origin(http: TestClient, page: str) -> None:
    r = http.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "cdn" not in r.text.lower() and "fonts.googleapis" not in r.text
    assert not re.search(r"https?://", r.text), re.findall(r"https?://\S+", r.text)
    refs = _Refs()
    refs.feed(r.text)
    for url in refs.urls:
        assert not urlsplit(url).netloc, url  # same origin: a path only
        asset = http.get(urljoin(page, url))
        assert asset.status_code == 200 and len(asset.content) > 1000, url


def test_docs_assets_are_served(http: TestClient) -> None:
    for name, kind, at_least in [
        ("swagger-ui-bundle.js", "text/javascript", 500_000),
        ("swagger-ui.css", "text/css", 50_000),
        ("redoc.standalone.js", "text/javascript", 500_000),
        ("favicon.png", "image/png", 1000),
    ]:
        r = http.get(f"/docs/assets/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), name
        assert len(r.content) >= at_least, name
    assert http.get("/docs/assets/../docs.py").status_code == 404
    assert 'src="/docs/assets/swagger-ui-bundle.js"' in http.get("/docs").text
    assert 'src="/docs/assets/redoc.standalone.js"' in http.get("/redoc").text
    assert "/openapi.json" in http.get("/docs").text


# ---------------------------------------------------------------- problem slugs in the code

SOURCE_DIRS = ("api", "media", "store", "ringflow", "workflows", "activities")


def _sources() -> Iterator[tuple[str, ast.Module]]:
    for folder in SOURCE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text(), str(path))


def _name(call: ast.Call) -> str:
    return call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")


def _strings(node: ast.AST) -> set[str]:
    """String literals in ``node`` that can be a value (a fallback, a mapping's value), not
    a key looked up: the first argument of a call (``doc.get("type", "")``) is left out."""
    keys = {id(n.args[0]) for n in ast.walk(node) if isinstance(n, ast.Call) and n.args}
    return {
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in keys
    }


def _first_str_args(callee: str) -> set[str]:
    """The literal first argument of every call of ``callee`` in the sources."""
    found: set[str] = set()
    for _, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node) == callee and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
    return found


def _dynamic_slugs(where: str) -> set[str]:
    """Slugs of a ``Problem(...)`` whose slug is computed: the sources each one draws from."""
    if where == "api/routers/calls.py:run_update":  # the workflows' typed rejections
        from api.routers.calls import _REJECTIONS

        return {slug for _, slug, _ in _REJECTIONS.values()}
    if where == "api/routers/directory.py:_problem":  # store.directory.Conflict(slug, ...)
        return _first_str_args("Conflict")
    if where == "api/routers/media.py:_unavailable":
        return {f"{what}-unavailable" for what in _first_str_args("_unavailable")}
    if where in ("api/problems.py:_http", "api/routers/media.py:forward_offer"):
        return set()  # literals in the function (collected below); the bridge's own slugs
    raise AssertionError(f"{where}: a Problem whose slug is not a literal; teach this test its slugs")


SLUG = re.compile(r"[a-z][a-z-]*")

Function = ast.FunctionDef | ast.AsyncFunctionDef


def _problem_calls(
    node: ast.AST, function: Function | None = None
) -> Iterator[tuple[Function | None, ast.Call]]:
    """Every ``Problem(...)`` call under ``node`` with its innermost enclosing function."""
    for child in ast.iter_child_nodes(node):
        inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
        if isinstance(child, ast.Call) and _name(child) == "Problem":
            yield inner, child
        yield from _problem_calls(child, inner)


def code_slugs() -> set[str]:
    """Every problem slug the code can produce: literal slugs of ``Problem(...)`` calls,
    the string literals a computed slug is made of in its function, and the sources of the
    computed ones (:func:`_dynamic_slugs`)."""
    slugs: set[str] = set()
    for rel, tree in _sources():
        for function, node in _problem_calls(tree):
            slug = node.args[1] if len(node.args) > 1 else None
            slug = next((k.value for k in node.keywords if k.arg == "slug"), slug)
            assert slug is not None, f"{rel}:{node.lineno}: Problem without a slug"
            if isinstance(slug, ast.Constant):
                slugs.add(str(slug.value))
                continue
            assert function is not None, f"{rel}:{node.lineno}: a computed slug outside a function"
            slugs |= _dynamic_slugs(f"{rel}:{function.name}")
            slugs |= {s for s in _strings(slug) if SLUG.fullmatch(s)}
            if isinstance(slug, ast.Name):  # e.g. slug = {404: "not-found", ...}.get(..., "http")
                for assign in ast.walk(function):
                    if isinstance(assign, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == slug.id for t in assign.targets
                    ):
                        slugs |= {s for s in _strings(assign.value) if SLUG.fullmatch(s)}
    return slugs


def test_problem_registry_matches_the_code() -> None:
    found = code_slugs()
    assert {"not-found", "validation", "unauthenticated", "overloaded", "device-exists"} <= found
    assert found - PROBLEM_SLUGS == set(), "slugs in the code missing from PROBLEM_SLUGS"
    assert PROBLEM_SLUGS - found == set(), "PROBLEM_SLUGS lists slugs the code no longer produces"


def test_every_problem_type_has_its_section_and_resolves(http: TestClient) -> None:
    path = errcodes_path()
    assert path == ROOT / "docs" / "errcodes.md"
    sections = parse_sections(path.read_text())
    assert sorted(PROBLEM_SLUGS - set(sections)) == [], "slugs without a section in docs/errcodes.md"
    for slug in sorted(PROBLEM_SLUGS):
        url = urljoin("http://127.0.0.1:8080/v1/calls/x/answer", problem_type(slug))
        assert url == f"http://127.0.0.1:8080/problems/{slug}"
        r = http.get(url)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), slug
        assert f'<h3 id="{slug}">{slug}</h3>' in r.text and "<p>" in r.text, slug
    index = http.get("/problems")
    assert index.status_code == 200
    assert [slug for slug in sorted(PROBLEM_SLUGS) if f'id="{slug}"' not in index.text] == []
    assert 'id="problem-types"' in index.text and "<table>" in index.text
    unknown = http.get("/problems/no-such-problem")
    assert unknown.status_code == 404 and unknown.json()["type"] == "/problems/not-found"


def test_a_real_problem_type_leads_to_its_documentation(http: TestClient) -> None:
    r = http.get("/v1/units/101")  # no key
    page = http.get(urljoin(str(r.url), r.json()["type"]))
    assert page.status_code == 200 and "X-API-Key" in page.text and "unauthenticated" in page.text
