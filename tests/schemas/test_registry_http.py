"""Confluent framing over real HTTP, against a Confluent-compatible registry (``tests/support/schema_registry``):
subject strategies, credentials, a registry that is locked, down, or does not know an id."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from kep.schemas import (
    ConfluentCodec,
    DecodeError,
    IncompatibleSchemaError,
    LocalSchemaRegistry,
    SchemaNotRegisteredError,
    SchemaRegistrySettings,
    SchemaRegistryUnavailableError,
    UnknownSchemaError,
)
from kep.schemas import codec_for as kep_codec_for
from shop.orders import OrderPlaced, PaymentCaptured
from tests.support.schema_registry import RegistryServer

pytestmark = pytest.mark.unit

ORDER = "kep.orders.OrderPlaced"
SECRET = "s3cret-" + uuid.uuid4().hex[:8]
TOKEN = "tok-" + uuid.uuid4().hex[:8]
FAST = {"timeout_s": 5.0, "max_retries": 0}


@pytest.fixture
def registry() -> Iterator[RegistryServer]:
    with RegistryServer() as server:
        yield server


_open: list[ConfluentCodec] = []


@pytest.fixture(autouse=True)
def _close_codecs() -> Iterator[None]:
    """Every codec a test makes closes its HTTP connections (a client left to the garbage collector warns)."""
    yield
    while _open:
        _open.pop().close()


def _settings(**values: object) -> SchemaRegistrySettings:
    return SchemaRegistrySettings(**{**FAST, **values})  # type: ignore[arg-type]


def codec_for(url: str, settings: SchemaRegistrySettings | None = None) -> ConfluentCodec:
    codec = kep_codec_for(url, settings=settings)
    assert isinstance(codec, ConfluentCodec)
    _open.append(codec)
    return codec


def _newest(name: str) -> str:
    return json.dumps(LocalSchemaRegistry.default().latest(name).schema)


def test_round_trip_over_http_registers_once_and_fetches_once(
    registry: RegistryServer, order: OrderPlaced, payment: PaymentCaptured
) -> None:
    producer_side = codec_for(registry.url, settings=_settings())
    consumer_side = codec_for(registry.url, settings=_settings())
    blobs = [producer_side.encode(event) for event in (order, order, payment)]
    assert [consumer_side.decode(blob) for blob in blobs] == [order, order, payment]
    assert registry.subjects() == [ORDER, "kep.orders.PaymentCaptured"]  # the record name strategy
    assert registry.count("POST", f"/subjects/{ORDER}/versions") == 1
    assert registry.count("GET", "/schemas/ids/1") == 1 and registry.count("GET", "/schemas/ids/2") == 1
    assert producer_side.schema_ref(OrderPlaced) == "sr:1"


def test_topic_name_strategy_registers_topic_value(registry: RegistryServer, order: OrderPlaced) -> None:
    codec = codec_for(registry.url, settings=_settings(subject_strategy="topic_name"))
    data = codec.encode(order, "orders")
    assert registry.subjects() == ["orders-value"]
    assert codec.encode(order, "orders-eu") == data  # same schema, same global id, another subject
    assert registry.subjects() == ["orders-eu-value", "orders-value"]
    assert codec.decode(data) == order


def test_topic_strategy_from_the_environment(
    registry: RegistryServer, order: OrderPlaced, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEP_SCHEMA_REGISTRY_SUBJECT_STRATEGY", "topic_record_name")
    codec_for(registry.url).encode(order, "orders")
    assert registry.subjects() == [f"orders-{ORDER}"]


def test_basic_auth(order: OrderPlaced) -> None:
    with RegistryServer(users={"alice": SECRET}) as server:
        settings = _settings(username="alice", password=SECRET)
        assert SECRET not in f"{settings!r} {settings} {settings.model_dump_json()}"
        codec = codec_for(server.url, settings=settings)
        assert codec.decode(codec.encode(order)) == order
        assert all(r.authorization and r.authorization.startswith("Basic ") for r in server.requests)
        wrong = codec_for(server.url, settings=_settings(username="alice", password="nope-" + SECRET))
        with pytest.raises(
            SchemaRegistryUnavailableError, match="refused the credentials: Unauthorized"
        ) as info:
            wrong.encode(order)
        assert "AUTO_REGISTER" not in str(info.value)
        anonymous = codec_for(server.url, settings=_settings())
        with pytest.raises(SchemaRegistryUnavailableError, match="HTTP status code 401"):
            anonymous.decode(codec.encode(order))
    assert SECRET not in str(info.value)


def test_bearer_token(order: OrderPlaced) -> None:
    with RegistryServer(tokens={TOKEN}) as server:
        settings = _settings(bearer_token=TOKEN, bearer_logical_cluster="lsrc-123")
        assert TOKEN not in repr(settings)
        codec = codec_for(server.url, settings=settings)
        assert codec.decode(codec.encode(order)) == order
        assert {r.authorization for r in server.requests} == {f"Bearer {TOKEN}"}
        assert {r.headers.get("target-sr-cluster") for r in server.requests} == {"lsrc-123"}


def test_settings_refuse_half_credentials() -> None:
    with pytest.raises(ValueError, match="password without username") as info:
        SchemaRegistrySettings(password=SECRET)  # type: ignore[arg-type]
    assert SECRET not in str(info.value)
    with pytest.raises(ValueError, match="choose one"):
        SchemaRegistrySettings(username="a", password="b", bearer_token="c")  # type: ignore[arg-type]


def test_without_auto_registration_the_id_is_looked_up_never_registered(
    order: OrderPlaced, payment: PaymentCaptured
) -> None:
    with RegistryServer(read_only=True) as locked:
        order_id = locked.register(ORDER, _newest(ORDER))  # what the schema pipeline registered
        codec = codec_for(locked.url, settings=_settings(auto_register=False))
        data = codec.encode(order)
        assert int.from_bytes(data[1:5], "big") == order_id
        assert codec.decode(data) == order
        with pytest.raises(SchemaNotRegisteredError) as info:
            codec.encode(payment)
        message = str(info.value)
        assert (
            "kep.orders.PaymentCaptured v1 is not registered under subject 'kep.orders.PaymentCaptured'"
            in message
        )
        assert "auto-registration is off" in message
        assert not [r for r in locked.requests if r.path.endswith("/versions") and r.method == "POST"]
        # with auto-registration on, a locked registry says so, and the error says what to do
        registering = codec_for(locked.url, settings=_settings())
        with pytest.raises(SchemaRegistryUnavailableError, match="read-only mode.*AUTO_REGISTER=false"):
            registering.encode(payment)


def test_a_subject_not_there_at_all_names_the_subject(registry: RegistryServer, order: OrderPlaced) -> None:
    codec = codec_for(registry.url, settings=_settings(auto_register=False, subject_strategy="topic_name"))
    with pytest.raises(
        SchemaNotRegisteredError, match="under subject 'orders-value'.*Subject 'orders-value' not"
    ):
        codec.encode(order, "orders")


def test_the_registrys_compatibility_refusal_is_incompatible_schema_error(
    registry: RegistryServer, order: OrderPlaced
) -> None:
    registry.incompatible.add(ORDER)
    with pytest.raises(IncompatibleSchemaError, match="incompatible with an earlier schema"):
        codec_for(registry.url, settings=_settings()).encode(order)


def test_an_outage_is_unavailable_not_undecodable(registry: RegistryServer, order: OrderPlaced) -> None:
    data = codec_for(registry.url, settings=_settings()).encode(order)
    reader = codec_for(registry.url, settings=_settings())
    registry.down = True
    with pytest.raises(
        SchemaRegistryUnavailableError, match="lookup of id 1 failed.*HTTP status code 503"
    ) as info:
        reader.decode(data)
    assert not isinstance(info.value, DecodeError)
    registry.down = False
    assert reader.decode(data) == order  # nothing cached from the failure


def test_a_registry_that_is_gone_is_unavailable_within_the_timeout(order: OrderPlaced) -> None:
    with RegistryServer() as server:
        data = codec_for(server.url, settings=_settings()).encode(order)
        url = server.url
    reader = codec_for(url, settings=_settings())
    start = time.monotonic()
    with pytest.raises(SchemaRegistryUnavailableError, match=f"lookup of id 1 failed at {url}: ConnectError"):
        reader.decode(data)
    with pytest.raises(SchemaRegistryUnavailableError, match="cannot register"):
        codec_for(url, settings=_settings()).encode(order)
    assert time.monotonic() - start < 15


def test_credentials_in_the_url_never_show(order: OrderPlaced) -> None:
    with RegistryServer() as server:
        url = server.url.replace("http://", f"http://alice:{SECRET}@")
    with pytest.raises(SchemaRegistryUnavailableError) as info:
        codec_for(url, settings=_settings()).encode(order)
    assert SECRET not in str(info.value) and "http://***@127.0.0.1" in str(info.value)


def test_an_unknown_id_is_asked_for_once_per_ttl(registry: RegistryServer, order: OrderPlaced) -> None:
    now = [0.0]
    settings = _settings()
    body = codec_for(registry.url, settings=settings).encode(order)[5:]
    client = codec_for(registry.url, settings).client
    codec = ConfluentCodec(client, unknown_id_ttl_s=60, url=registry.url, clock=lambda: now[0])
    data = b"\x00" + (4242).to_bytes(4, "big") + body
    for _ in range(5):
        with pytest.raises(UnknownSchemaError, match="schema id 4242 is not in the registry") as info:
            codec.decode(data)
        assert info.value.raw == data
    assert registry.count("GET", "/schemas/ids/4242") == 1
    now[0] = 61.0
    with pytest.raises(UnknownSchemaError):
        codec.decode(data)
    assert registry.count("GET", "/schemas/ids/4242") == 2
