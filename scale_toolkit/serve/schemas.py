"""The request bodies `POST /api/search` accepts, as typed models with bounds.

A body is parsed only after its size (the guard) and its nesting depth (here) are checked;
then pydantic checks every field: integers are integers (no 1.5, no true, no 1e999), numbers
are finite (no NaN or infinity), strings and lists have bounded lengths, unknown fields are
refused. A failure is a RequestError (422) naming the field, in one line.
"""
from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .ids import shown
from .search import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, RequestError

MAX_DEPTH = 4  # {"vector": [..]} is depth 2; nothing the API takes is deeper
MAX_ID_CHARS = 4096  # a path-like id; Linux paths are at most 4096 bytes
MAX_VECTOR = 65536  # far above any backbone's width; the index's own width is checked after
MAX_NAME_CHARS = 512  # class names, exclude modes, tokens


def json_depth_ok(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON text nests arrays/objects at most `limit` deep (strings skipped), without parsing it.

    >>> json_depth_ok(b'{"a": [1, "[[[["]}', 2), json_depth_ok(b'[[[1]]]', 2)
    (True, False)
    """
    depth, in_string, escaped = 0, False, False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return False
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return True


Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]


class SearchOptions(BaseModel):
    """Paging, class filter and exclusion of any search."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    class_filter: Optional[Name] = Field(None, alias="class")
    exclude: Literal["none", "video", "group"] = "video"
    class_name: Optional[Name] = None  # the query's own class, for a vector or a file

    def as_kwargs(self) -> dict:
        return {"limit": self.limit, "offset": self.offset, "class_name": self.class_filter or None,
                "exclude": self.exclude}


class JsonSearch(SearchOptions):
    """A JSON search: exactly one of a video id, a descriptor vector or an earlier upload's token."""

    video_id: Optional[Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]] = None
    vector: Optional[Annotated[list[float], Field(min_length=1, max_length=MAX_VECTOR)]] = None
    token: Optional[Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]] = None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return shown(f"{where}: {err.get('msg', 'invalid value')}" if where else err.get("msg", "invalid request"))


def parse_json_search(raw: bytes) -> JsonSearch:
    """The JSON body of a search, checked (RequestError 400/422 otherwise)."""
    if not json_depth_ok(raw):
        raise RequestError(f"the JSON body nests deeper than {MAX_DEPTH} levels", 422)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RequestError(f"the body is not valid JSON: {shown(str(exc)).splitlines()[0][:200]}", 400) from None
    if not isinstance(body, dict):
        raise RequestError("the JSON body must be an object, e.g. {\"video_id\": \"...\"}", 422)
    given = [k for k in ("video_id", "vector", "token") if body.get(k) is not None]
    if len(given) != 1:
        raise RequestError("give exactly one of video_id, vector or token (or upload a file as multipart 'file')", 422)
    try:
        return JsonSearch.model_validate(body, strict=True)
    except ValidationError as exc:
        raise RequestError(_first_error(exc), 422) from None


def parse_form_options(fields: dict[str, Any]) -> SearchOptions:
    """The text fields of a multipart upload (strings; empty means "not given")."""
    given = {k: v for k, v in fields.items() if v != ""}
    try:
        return SearchOptions.model_validate(given)
    except ValidationError as exc:
        raise RequestError(_first_error(exc), 422) from None
