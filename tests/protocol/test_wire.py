"""The gRPC header format alone (rpc.protocol.wire): each rule, and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc.http2.headers import malformed
from rpc.protocol import wire
from rpc.protocol.metadata import RESERVED_KEYS, Metadata, encode_metadata
from rpc.protocol.status import StatusCode
from rpc.protocol.wire import (
    CONTENT_TYPE,
    Rejection,
    RequestHead,
    ResponseHead,
    Status,
    WireHeaders,
    build_request,
    build_response,
    build_status,
    is_grpc_content_type,
    parse_request,
    parse_response,
    parse_status,
    trailers_only,
)


def received(headers: WireHeaders) -> list[tuple[str, str]]:
    """Headers as rpc.core delivers them."""
    return [
        (n.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
        for n, v in headers
    ]


def request(**changes: str | None) -> list[tuple[str, str]]:
    """A valid request as a server receives it, with headers changed (None: left out)."""
    base = {
        ":method": "POST",
        ":scheme": "http",
        ":path": "/pkg.Service/Method",
        ":authority": "localhost",
        "te": "trailers",
        "content-type": "application/grpc",
    }
    base.update(changes)  # type: ignore[arg-type]
    return [(name, value) for name, value in base.items() if value is not None]


# --- requests -------------------------------------------------------------------------


def test_build_request_then_parse_request() -> None:
    headers = build_request(
        "/pkg.Service/Method",
        user_agent=b"test/1.0",
        timeout=1.5,
        encoding="gzip",
        metadata=[(b"x-key", b"value"), (b"x-bin", b"AAE")],
    )
    assert malformed(headers, "request", inbound=False) is None
    assert (b"content-type", CONTENT_TYPE.encode()) in headers
    assert (b"user-agent", b"test/1.0") in headers
    head = parse_request(received(headers))
    assert isinstance(head, RequestHead)
    assert head.path == "/pkg.Service/Method"
    assert head.timeout == 1.5
    assert head.encoding == "gzip"
    assert head.accept_encoding == {"gzip", "deflate", "identity"}
    assert list(head.metadata) == [
        ("user-agent", "test/1.0"),
        ("x-key", "value"),
        ("x-bin", b"\0\1"),
    ]


def test_build_request_without_options_has_no_timeout_or_encoding() -> None:
    headers = build_request("/a/b", user_agent=b"ua")
    names = [name for name, _ in headers]
    assert b"grpc-timeout" not in names and b"grpc-encoding" not in names
    assert names[:3] == [b":method", b":path", b"te"]


def test_build_request_returns_a_fresh_list_each_time() -> None:
    first = build_request("/a/b", user_agent=b"ua")
    first.append((b"x-extra", b"1"))
    assert (b"x-extra", b"1") not in build_request("/a/b", user_agent=b"ua")


def test_a_request_that_is_not_a_post_is_http_405() -> None:
    rejection = parse_request(request(**{":method": "GET"}))
    assert rejection == Rejection(405)
    assert rejection.headers() == [(b":status", b"405")]


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "application/grpc-web",
        "application/grpc-web+proto",
        "application/grpcfoo",
        "application/json",
    ],
)
def test_a_request_of_another_content_type_is_http_415(content_type: str | None) -> None:
    rejection = parse_request(request(**{"content-type": content_type}))
    assert rejection == Rejection(415)
    assert rejection.headers() == [(b":status", b"415")]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/grpc",
        "application/grpc+proto",
        "application/grpc+json",
        "application/grpc; charset=utf-8",
        "Application/GRPC+proto;x=y",
    ],
)
def test_grpc_content_types(content_type: str) -> None:
    assert is_grpc_content_type(content_type)
    assert isinstance(parse_request(request(**{"content-type": content_type})), RequestHead)


def _refusal(headers: list[tuple[str, str]]) -> Status:
    rejection = parse_request(headers)
    assert isinstance(rejection, Rejection) and rejection.http_status == 200
    assert rejection.status is not None
    block = rejection.headers()
    assert malformed(block, "response", inbound=False) is None
    assert block[:2] == [(b":status", b"200"), (b"content-type", b"application/grpc")]
    assert parse_response(received(block)) == rejection.status
    return rejection.status


def test_a_request_without_te_trailers_is_internal() -> None:
    status = _refusal(request(te=None))
    assert status.code is StatusCode.INTERNAL and "te" in status.message


def test_an_unknown_request_encoding_is_unimplemented_and_lists_the_accepted_ones() -> None:
    rejection = parse_request(request(**{"grpc-encoding": "snappy"}))
    assert isinstance(rejection, Rejection) and rejection.status is not None
    assert rejection.status.code is StatusCode.UNIMPLEMENTED
    assert (b"grpc-accept-encoding", b"gzip,deflate,identity") in rejection.headers()


def test_identity_request_encoding_is_no_encoding() -> None:
    head = parse_request(request(**{"grpc-encoding": "identity"}))
    assert isinstance(head, RequestHead) and head.encoding is None


@pytest.mark.parametrize("timeout", ["", "1", "S", "123456789S", "1x", "-1S", "1.5S", "\uff11S"])
def test_a_bad_timeout_is_internal(timeout: str) -> None:
    status = _refusal(request(**{"grpc-timeout": timeout}))
    assert status.code is StatusCode.INTERNAL and "grpc-timeout" in status.message


def test_bad_binary_metadata_is_internal() -> None:
    status = _refusal(request(**{"x-bin": "!!!"}))
    assert status.code is StatusCode.INTERNAL and "base64" in status.message


def test_the_first_of_repeated_headers_counts() -> None:
    headers = [*request(), ("grpc-timeout", "1S"), ("grpc-timeout", "bad")]
    head = parse_request(headers)
    assert isinstance(head, RequestHead) and head.timeout == 1.0


def test_request_metadata_leaves_out_the_protocol_headers() -> None:
    head = parse_request(request(**{"grpc-timeout": "1S", "x-user": "1"}))
    assert isinstance(head, RequestHead)
    assert list(head.metadata) == [("x-user", "1")]


# --- responses ------------------------------------------------------------------------


def test_build_response_then_parse_response() -> None:
    headers = build_response("gzip", Metadata([("x-a", "1"), ("x-b-bin", b"\xff")]))
    assert malformed(headers, "response", inbound=False) is None
    head = parse_response(received(headers))
    assert head == ResponseHead(
        encoding="gzip", metadata=Metadata([("x-a", "1"), ("x-b-bin", b"\xff")])
    )


def test_build_response_refuses_reserved_metadata() -> None:
    with pytest.raises(ValueError, match="reserved"):
        build_response(None, Metadata([("grpc-status", "0")]))


def test_trailers_only_is_a_status() -> None:
    status = Status(StatusCode.NOT_FOUND, "no such key: ", Metadata([("x-a", "1")]), b"\1\2")
    headers = trailers_only(status)
    assert malformed(headers, "response", inbound=False) is None
    assert parse_response(received(headers)) == status


@pytest.mark.parametrize(
    ("http_status", "code"),
    [
        ("400", StatusCode.INTERNAL),
        ("401", StatusCode.UNAUTHENTICATED),
        ("403", StatusCode.PERMISSION_DENIED),
        ("404", StatusCode.UNIMPLEMENTED),
        ("429", StatusCode.UNAVAILABLE),
        ("502", StatusCode.UNAVAILABLE),
        ("503", StatusCode.UNAVAILABLE),
        ("504", StatusCode.UNAVAILABLE),
        ("500", StatusCode.UNKNOWN),
        ("302", StatusCode.UNKNOWN),
        ("", StatusCode.UNKNOWN),
    ],
)
def test_an_http_status_without_grpc_status_is_mapped(http_status: str, code: StatusCode) -> None:
    headers = [(":status", http_status)] if http_status else []
    status = parse_response(headers)
    assert isinstance(status, Status) and status.code is code
    assert parse_status(headers).code is code


def test_grpc_status_wins_over_the_http_status() -> None:
    status = parse_response([(":status", "503"), ("grpc-status", "5")])
    assert isinstance(status, Status) and status.code is StatusCode.NOT_FOUND


def test_a_response_of_another_content_type_is_unknown() -> None:
    status = parse_response([(":status", "200"), ("content-type", "text/html")])
    assert isinstance(status, Status) and status.code is StatusCode.UNKNOWN


def test_an_unknown_response_encoding_is_internal() -> None:
    status = parse_response(
        [(":status", "200"), ("content-type", "application/grpc"), ("grpc-encoding", "br")]
    )
    assert isinstance(status, Status) and status.code is StatusCode.INTERNAL


def test_bad_response_metadata_is_internal() -> None:
    status = parse_response(
        [(":status", "200"), ("content-type", "application/grpc"), ("x-bin", "$$")]
    )
    assert isinstance(status, Status) and status.code is StatusCode.INTERNAL


# --- status ---------------------------------------------------------------------------


def test_trailers_without_grpc_status_are_unknown() -> None:
    status = parse_status([("x-a", "1")])
    assert status.code is StatusCode.UNKNOWN and "grpc-status" in status.message


def test_an_unknown_grpc_status_is_unknown() -> None:
    assert parse_status([("grpc-status", "99")]).code is StatusCode.UNKNOWN
    assert parse_status([("grpc-status", "x")]).code is StatusCode.UNKNOWN


def test_bad_status_details_are_internal() -> None:
    status = parse_status([("grpc-status", "5"), ("grpc-status-details-bin", "!")])
    assert status.code is StatusCode.INTERNAL


def test_an_ok_status_without_message_is_one_header() -> None:
    assert build_status(Status(StatusCode.OK)) == [(b"grpc-status", b"0")]


@pytest.mark.parametrize(
    ("message", "encoded"),
    [
        ("no such key: ", b"no such key:%20"),
        (" x", b"%20x"),
        (" ", b"%20"),
        ("  two  ", b"%20 two %20"),
        ("tab\t", b"tab%09"),
        ("50%", b"50%25"),
        ("caf\u00e9", b"caf%C3%A9"),
        ("inner spaces stay", b"inner spaces stay"),
    ],
)
def test_the_message_is_percent_encoded(message: str, encoded: bytes) -> None:
    headers = build_status(Status(StatusCode.NOT_FOUND, message))
    assert headers[1] == (b"grpc-message", encoded)
    assert malformed(headers, "trailers", inbound=False) is None
    assert parse_status(received(headers)).message == message


def test_a_raw_message_with_surrounding_spaces_is_kept_as_it_came() -> None:
    """grpcio sends 'no such key: ' raw (its encoder leaves spaces alone); grpc.aio delivers it
    intact, and so do we."""
    assert parse_status([("grpc-status", "5"), ("grpc-message", "no such key: ")]).message == (
        "no such key: "
    )


@given(st.text())
def test_any_status_message_round_trips_byte_exact(message: str) -> None:
    headers = build_status(Status(StatusCode.INTERNAL, message))
    assert malformed(headers, "trailers", inbound=False) is None
    assert (
        malformed(trailers_only(Status(StatusCode.INTERNAL, message)), "response", inbound=False)
        is None
    )
    status = parse_status(received(headers))
    assert status.message.encode("utf-8") == message.encode("utf-8")


_keys = st.from_regex(r"[0-9a-z_.\-]{1,20}", fullmatch=True).filter(
    lambda key: not key.startswith("grpc-") and key not in RESERVED_KEYS
)
_text_values = st.from_regex(r"([\x21-\x7e]([\x20-\x7e]{0,30}[\x21-\x7e])?)?", fullmatch=True)
_pairs = st.lists(
    _keys.flatmap(
        lambda key: st.tuples(
            st.just(key), st.binary(max_size=40) if key.endswith("-bin") else _text_values
        )
    ),
    max_size=8,
)


@given(_pairs, st.sampled_from([StatusCode.OK, StatusCode.ABORTED]))
def test_any_valid_metadata_round_trips(
    pairs: list[tuple[str, str | bytes]], code: StatusCode
) -> None:
    metadata = Metadata(pairs)
    head = parse_response(received(build_response(None, metadata)))
    assert isinstance(head, ResponseHead) and head.metadata == metadata
    assert parse_status(received(build_status(Status(code, "m", metadata)))).metadata == metadata
    request_head = parse_request(
        received(
            [
                *build_request("/a/b", user_agent=b"ua", metadata=encode_metadata(metadata)),
                (b":scheme", b"http"),
            ]
        )
    )
    assert isinstance(request_head, RequestHead)
    assert [pair for pair in request_head.metadata if pair[0] != "user-agent"] == [
        pair for pair in metadata if pair[0] != "user-agent"
    ]


@pytest.mark.parametrize("value", [" leading", "trailing ", " ", "tab\t", "new\nline", "caf\u00e9"])
def test_metadata_that_http2_cannot_carry_is_refused_where_it_is_given(value: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        Metadata([("x-key", value)])


def test_a_request_without_te_is_served_when_te_is_not_required() -> None:
    headers = [(":method", "POST"), (":path", "/p.S/M"), ("content-type", "application/grpc")]
    head = wire.parse_request(headers, require_te=False)
    assert isinstance(head, wire.RequestHead) and head.path == "/p.S/M"
    assert isinstance(wire.parse_request(headers), wire.Rejection)
