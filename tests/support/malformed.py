"""Generated malformed enrollment requests (hypothesis): each one with the fields its 400 must name.

Every request starts from the seed offer (under a contract id no test enrolls) and breaks it on
purpose, so each generated request is invalid by construction and its expected answer is known:

- `MUTATIONS` break one field of the JSON object (missing, wrong type, out of range, bad id or name,
  an action name no handler performs, oversized string, duplicate action names, empty or too long
  action list, free-form data nested too deep or with a number DynamoDB cannot store, an unknown
  field); `combined` breaks 2-3 unrelated fields at once. The 400 must name exactly the broken fields.
- The other categories are bodies that are not a JSON object at all (other JSON, not JSON, not
  UTF-8, empty, larger than the API takes, nested deeper than the parser goes): the 400 names
  `(body)`.

Any of them may go with a wrong Content-Type (the API reads the body, whatever the header says), an
`Idempotency-Key` (a 400 must not reach the idempotency table) and an `X-Correlation-Id`.
"""

from __future__ import annotations

import copy
import json
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st

SEED = json.loads((Path(__file__).resolve().parents[2] / "events/enrollment/input.json").read_text())
SEED["contractId"] = "MAL-NEVER-ENROLLED"
SEED_TEXT = json.dumps(SEED)
MAX_REQUEST_BYTES = 32 * 1024  # enrollment.model.MAX_REQUEST_BYTES (tests/unit checks they agree)
MAX_EXTRA_DEPTH = 8  # enrollment.model.MAX_EXTRA_DEPTH
ACTIONS = len(SEED["contractDraft"]["List"])
TOP_LEVEL = {"contractId", "accountId", "contractInfo", "contractDraft", "correlationId"}
ID_CHARS = string.ascii_letters + string.digits + "_-"
NAME_CHARS = string.ascii_letters + string.digits + "_.-"
# enrollment.action_names.SUPPORTED_ACTIONS (tests/unit checks they agree): any other name is refused.
SUPPORTED_ACTIONS = ("rateChange", "action1", "action2", "action100")
BODY = frozenset({"(body)"})
JSON = "application/json"
CONTENT_TYPES = [
    JSON,
    JSON,
    JSON,
    "application/json; charset=utf-8",
    "text/plain",
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
]


@dataclass(frozen=True)
class Malformed:
    category: str
    body: bytes
    fields: frozenset[str]  # exactly what the 400 must name
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def wrong_content_type(self) -> bool:
        return not self.content_type.startswith(JSON)


# ---------------------------------------------------------------- JSON values

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


not_str = json_values.filter(lambda v: not isinstance(v, str))
not_object = json_values.filter(lambda v: not isinstance(v, dict))
not_list = json_values.filter(lambda v: not isinstance(v, list))
not_int = json_values.filter(lambda v: not _is_int(v)) | st.integers(-(10**6), 10**6).map(float)  # 3.0 is no int
not_number = json_values.filter(lambda v: not _is_number(v))
not_str_nor_null = json_values.filter(lambda v: v is not None and not isinstance(v, str))


def repeated(chars: str, min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """A long string without drawing every character (hypothesis keeps examples small)."""
    chunk = st.text(alphabet=chars, min_size=1, max_size=4) if chars else st.text(min_size=1, max_size=4)
    return st.tuples(chunk, st.integers(min_size, max_size)).map(lambda t: (t[0] * t[1])[: t[1]])


def _nested(depth: int, shape: str) -> Any:
    value: Any = "deep"
    for level in range(depth):
        use_list = shape == "list" or (shape == "mixed" and level % 2)
        value = [value] if use_list else {"k": value}
    return value


too_deep = st.builds(_nested, st.integers(MAX_EXTRA_DEPTH + 1, 200), st.sampled_from(["dict", "list", "mixed"]))
unstorable_number = st.one_of(
    st.floats(min_value=1e126, allow_infinity=False),
    st.floats(max_value=-1e126, allow_infinity=False),
    st.floats(min_value=1e-300, max_value=9e-131),
    st.integers(min_value=10**38, max_value=10**60),
    st.integers(min_value=-(10**60), max_value=-(10**38)),
)

# ---------------------------------------------------------------- bad strings

invalid_char = st.characters(exclude_characters=ID_CHARS, codec="utf-8")
bad_identifier = st.one_of(
    st.just(""),
    st.builds(lambda first, rest: first + rest, st.sampled_from("-_"), st.text(ID_CHARS, max_size=8)),
    st.builds(
        lambda head, bad, tail: head + bad + tail,
        st.text(ID_CHARS, max_size=8),
        invalid_char,
        st.text(ID_CHARS, max_size=8),
    ),
)
# Well-formed names no handler performs (the 400 names them too).
unsupported_action_name = st.one_of(
    st.sampled_from(["teleport", "RateChange", "action3", "action10", "action1.", "rate-change"]),
    st.builds(lambda first, rest: first + rest, st.sampled_from(string.ascii_letters), st.text(NAME_CHARS, max_size=8)),
).filter(lambda name: name not in SUPPORTED_ACTIONS)
bad_action_name = st.one_of(
    st.just(""),
    unsupported_action_name,
    st.builds(
        lambda first, rest: first + rest, st.sampled_from(string.digits + "_.-"), st.text(NAME_CHARS, max_size=8)
    ),
    st.builds(
        lambda head, bad, tail: "a" + head + bad + tail,
        st.text(NAME_CHARS, max_size=8),
        st.characters(exclude_characters=NAME_CHARS, codec="utf-8"),
        st.text(NAME_CHARS, max_size=8),
    ),
)
bad_currency = st.text(max_size=6).filter(lambda s: not re.fullmatch(r"[A-Z]{3}", s))
# Far above each limit (40, 64, 100 characters), and three of them still fit in a request.
OVERSIZED_MAX = 1000
oversized_identifier = st.builds(
    lambda first, rest: first + rest, st.sampled_from("AZ09"), repeated(ID_CHARS, 40, OVERSIZED_MAX)
)
oversized_name = st.builds(
    lambda first, rest: first + rest, st.sampled_from("az"), repeated(NAME_CHARS, 64, OVERSIZED_MAX)
)


# ---------------------------------------------------------------- one broken field


@dataclass(frozen=True)
class Mutation:
    """Breaks the body at `path` (dotted, list indexes as numbers); the 400 names `path`."""

    kind: str
    path: str
    apply: Callable[[dict[str, Any]], None]


def _parts(path: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in path.split(".")]


def _parent(body: dict[str, Any], path: str) -> tuple[Any, str | int]:
    *parents, last = _parts(path)
    node: Any = body
    for part in parents:
        node = node[part]
    return node, last


def set_at(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        node, last = _parent(body, path)
        node[last] = copy.deepcopy(value)

    return apply


def delete_at(path: str) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        node, last = _parent(body, path)
        del node[last]

    return apply


action_index = st.integers(0, ACTIONS - 1)
REQUIRED = [
    "contractId",
    "accountId",
    "contractInfo",
    "contractDraft",
    "contractInfo.product",
    "contractInfo.monthlyPayment",
    "contractInfo.termMonths",
    "contractDraft.List",
    "contractDraft.List.#.name",
    "contractDraft.List.#.offset",
]
WRONG_TYPES = {
    "contractId": not_str,
    "accountId": not_str,
    "correlationId": not_str_nor_null,
    "contractInfo": not_object,
    "contractInfo.product": not_str,
    "contractInfo.monthlyPayment": not_number,
    "contractInfo.termMonths": not_int,
    "contractInfo.currency": not_str,
    "contractDraft": not_object,
    "contractDraft.List": not_list,
    "contractDraft.List.#": not_object,
    "contractDraft.List.#.name": not_str,
    "contractDraft.List.#.offset": not_int,
}
OUT_OF_RANGE = {
    "contractInfo.monthlyPayment": st.one_of(
        st.floats(max_value=0.0099, allow_nan=False, allow_infinity=False),
        st.floats(min_value=1_000_000, exclude_min=True, allow_infinity=False),
        st.integers(-(10**30), 0),
        st.integers(1_000_001, 10**30),
    ),
    "contractInfo.termMonths": st.integers(-(10**30), 0) | st.integers(361, 10**30),
    "contractDraft.List.#.offset": st.integers(-(10**30), -1) | st.integers(3651, 10**30),
}
BAD_FORMAT = {
    "contractId": bad_identifier,
    "accountId": bad_identifier,
    "correlationId": st.just(""),
    "contractInfo.product": st.just(""),
    "contractInfo.currency": bad_currency,
    "contractDraft.List.#.name": bad_action_name,
}
OVERSIZED = {
    "contractId": oversized_identifier,
    "accountId": oversized_identifier,
    "correlationId": repeated("", 101, OVERSIZED_MAX),
    "contractInfo.product": repeated("", 101, OVERSIZED_MAX),
    "contractDraft.List.#.name": oversized_name,
}
EXTRA_HOLDERS = ["contractInfo", "contractDraft", "contractDraft.List.#"]


@st.composite
def _concrete(draw: st.DrawFn, path: str) -> str:
    return path.replace("#", str(draw(action_index)))


@st.composite
def _valued(draw: st.DrawFn, kind: str, table: dict[str, st.SearchStrategy[Any]]) -> Mutation:
    template = draw(st.sampled_from(sorted(table)))
    path = draw(_concrete(template))
    return Mutation(kind, path, set_at(path, draw(table[template])))


@st.composite
def missing(draw: st.DrawFn) -> Mutation:
    path = draw(_concrete(draw(st.sampled_from(REQUIRED))))
    return Mutation("missing required field", path, delete_at(path))


@st.composite
def duplicate_names(draw: st.DrawFn) -> Mutation:
    first, second = draw(st.lists(action_index, min_size=2, max_size=2, unique=True))
    extra = draw(st.integers(0, 2))

    def apply(body: dict[str, Any]) -> None:
        # Copies of the whole action (a rateChange keeps its otherData.newRate), so each one is valid
        # and only the list is named.
        actions = body["contractDraft"]["List"]
        actions[second] = {**copy.deepcopy(actions[first]), "offset": actions[second]["offset"]}
        actions += [{**copy.deepcopy(actions[first]), "offset": 10 + n} for n in range(extra)]

    return Mutation("duplicate action names", "contractDraft.List", apply)


@st.composite
def list_size(draw: st.DrawFn) -> Mutation:
    size = draw(st.sampled_from([0]) | st.integers(21, 40))
    actions = [{"name": f"a{n}", "offset": n} for n in range(size)]
    return Mutation("action list size", "contractDraft.List", set_at("contractDraft.List", actions))


@st.composite
def unstorable_extra(draw: st.DrawFn) -> Mutation:
    holder = draw(_concrete(draw(st.sampled_from(EXTRA_HOLDERS))))
    key = "x" + draw(st.text(string.ascii_letters, max_size=6))
    value = draw(too_deep | unstorable_number)
    return Mutation("extra nesting or unstorable number", f"{holder}.{key}", set_at(f"{holder}.{key}", value))


@st.composite
def unknown_field(draw: st.DrawFn) -> Mutation:
    # No dot in the key: the 400 names fields by dotted path.
    key = draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in TOP_LEVEL and "." not in k))
    value = draw(json_values)

    def apply(body: dict[str, Any]) -> None:
        body[key] = copy.deepcopy(value)

    return Mutation("unknown field", key, apply)


MUTATIONS: dict[str, st.SearchStrategy[Mutation]] = {
    "missing required field": missing(),
    "wrong type": _valued("wrong type", WRONG_TYPES),
    "out-of-range number": _valued("out-of-range number", OUT_OF_RANGE),
    "bad id, name or format": _valued("bad id, name or format", BAD_FORMAT),
    "oversized string": _valued("oversized string", OVERSIZED),
    "duplicate action names": duplicate_names(),
    "action list size": list_size(),
    "extra nesting or unstorable number": unstorable_extra(),
    "unknown field": unknown_field(),
}


def _prefix_free(mutations: list[Mutation]) -> bool:
    paths = [m.path for m in mutations]
    return len(set(paths)) == len(paths) and not any(
        a != b and (b.startswith(a + ".") or a.startswith(b + ".")) for a in paths for b in paths
    )


def broken(category: str, mutations: list[Mutation]) -> Malformed:
    body = copy.deepcopy(SEED)
    for mutation in mutations:
        mutation.apply(body)
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert len(raw) <= MAX_REQUEST_BYTES, "a broken field must not make the body too large"
    return Malformed(category, raw, frozenset(m.path for m in mutations))


# ---------------------------------------------------------------- bodies that are not a JSON object

truncated = st.integers(1, len(SEED_TEXT) - 1).map(lambda n: SEED_TEXT[:n])
not_json_text = st.one_of(
    truncated,
    st.text(min_size=1, max_size=8).filter(lambda t: t.strip() != "").map(lambda t: SEED_TEXT + t),
    st.sampled_from(["NaN", "Infinity", "-Infinity"]).map(lambda c: SEED_TEXT.replace("125.0", c)),
    st.just(SEED_TEXT.replace('"', "'")),
    st.just("contractId=MAL-1&accountId=A-100"),
    st.just("<offer><contractId>MAL-1</contractId></offer>"),
    st.text(max_size=40).filter(lambda t: not t.strip().startswith("{")),
)


@st.composite
def _not_an_object(draw: st.DrawFn) -> Malformed:
    return Malformed("non-object JSON", json.dumps(draw(not_object)).encode(), BODY)


@st.composite
def _not_json(draw: st.DrawFn) -> Malformed:
    return Malformed("non-JSON body", draw(not_json_text).encode(), BODY)


@st.composite
def _not_utf8(draw: st.DrawFn) -> Malformed:
    prefix = draw(st.sampled_from([b"\xff\xfe", b"\x80", b"\xc3\x28", b"\xed\xa0\x80"]))
    return Malformed("invalid UTF-8", prefix + SEED_TEXT.encode(), BODY)


@st.composite
def _empty(draw: st.DrawFn) -> Malformed:
    return Malformed("empty body", draw(st.sampled_from(["", " ", "\n", "\r\n\t "])).encode(), BODY)


@st.composite
def _oversized_body(draw: st.DrawFn) -> Malformed:
    if draw(st.booleans()):
        size = draw(st.integers(MAX_REQUEST_BYTES, 3 * MAX_REQUEST_BYTES))
        body = copy.deepcopy(SEED)
        body["contractInfo"]["notes"] = "n" * size
        return Malformed("oversized or too deeply nested body", json.dumps(body).encode(), BODY)
    depth = draw(st.integers(10_000, MAX_REQUEST_BYTES // 2))
    return Malformed("oversized or too deeply nested body", ("[" * depth + "]" * depth).encode(), BODY)


@st.composite
def _single(draw: st.DrawFn, category: str) -> Malformed:
    return broken(category, [draw(MUTATIONS[category])])


@st.composite
def _combined(draw: st.DrawFn) -> Malformed:
    mutations = draw(
        st.lists(st.sampled_from(sorted(MUTATIONS)).flatmap(lambda c: MUTATIONS[c]), min_size=2, max_size=3).filter(
            _prefix_free
        )
    )
    return broken(COMBINED, mutations)


COMBINED = "combined (2-3 broken fields)"
BODIES = [
    *(_single(category) for category in sorted(MUTATIONS)),
    _combined(),
    _not_an_object(),
    _not_json(),
    _not_utf8(),
    _empty(),
    _oversized_body(),
]
header_token = st.text(string.ascii_letters + string.digits + "-_.:", min_size=1, max_size=40)


@st.composite
def malformed_requests(draw: st.DrawFn) -> Malformed:
    """One malformed request: a broken body, a content type, maybe idempotency and correlation ids."""
    request = draw(draw(st.sampled_from(BODIES)))  # one category, then a body of it
    headers = {}
    if draw(st.booleans()):
        headers["Idempotency-Key"] = "mal-" + draw(header_token)
    if draw(st.booleans()):
        headers["X-Correlation-Id"] = "mal-" + draw(header_token)
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    return Malformed(request.category, request.body, request.fields, content_type, headers)


def one_of_each() -> list[Malformed]:
    """The simplest request of every category, sent before the generated ones: hypothesis draws the
    category at random (reproducibly, but not evenly), so a category could otherwise go untested."""
    simplest = settings(database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    return [find(body, lambda _: True, settings=simplest) for body in BODIES]


# Reproducible and bounded: a fixed seed (derandomize), no example database, no shrinking (a failure
# reports the first failing request as sent), no per-example deadline (each one is an HTTP call).
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    report_multiple_bugs=False,
)
MIN_SENT = 100

CATEGORIES = {
    *MUTATIONS,
    COMBINED,
    "non-object JSON",
    "non-JSON body",
    "invalid UTF-8",
    "empty body",
    "oversized or too deeply nested body",
}


def distinct(requests: list[Malformed]) -> int:
    return len({(r.body, r.content_type, tuple(sorted(r.headers.items()))) for r in requests})
