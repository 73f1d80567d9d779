"""Service config parsing and validation (pure: no channel, no loop)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from rpc.client.service_config import (
    NO_METHOD_CONFIG,
    HedgingPolicy,
    RetryPolicy,
    RetryThrottling,
    ServiceConfig,
)
from rpc.protocol.status import StatusCode

RETRY = {
    "maxAttempts": 3,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE", 10],
}


def config_with(**method_config: Any) -> ServiceConfig:
    return ServiceConfig.parse({"methodConfig": [{"name": [{}], **method_config}]})


def test_full_config_from_json() -> None:
    text = json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": "pkg.Echo", "method": "Say"}],
                    "timeout": "1.5s",
                    "waitForReady": True,
                    "maxRequestMessageBytes": 1024,
                    "maxResponseMessageBytes": "2048",
                    "retryPolicy": RETRY,
                },
                {
                    "name": [{"service": "pkg.Echo"}],
                    "hedgingPolicy": {
                        "maxAttempts": 3,
                        "hedgingDelay": "0.5s",
                        "nonFatalStatusCodes": ["unavailable"],
                    },
                },
            ],
            "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
            "loadBalancingConfig": [{"round_robin": {}}],
        }
    )
    config = ServiceConfig.parse(text)
    say = config.method_config("/pkg.Echo/Say")
    assert say.timeout == 1.5
    assert say.wait_for_ready is True
    assert say.max_request_message_bytes == 1024
    assert say.max_response_message_bytes == 2048
    assert say.retry_policy == RetryPolicy(
        max_attempts=3,
        initial_backoff=0.1,
        max_backoff=1.0,
        backoff_multiplier=2.0,
        retryable_status_codes=frozenset({StatusCode.UNAVAILABLE, StatusCode.ABORTED}),
    )
    other = config.method_config("/pkg.Echo/Other")
    assert other.hedging_policy == HedgingPolicy(
        max_attempts=3,
        hedging_delay=0.5,
        non_fatal_status_codes=frozenset({StatusCode.UNAVAILABLE}),
    )
    assert config.method_config("/pkg.Other/Say") is NO_METHOD_CONFIG
    assert config.retry_throttling == RetryThrottling(max_tokens=10, milli_token_ratio=100)
    assert config.load_balancing_policy == "round_robin"
    assert config.retries_configured


def test_precedence_method_then_service_then_default() -> None:
    config = ServiceConfig.parse(
        {
            "methodConfig": [
                {"name": [{}], "timeout": "3s"},
                {"name": [{"service": "a.S"}], "timeout": "2s"},
                {"name": [{"service": "a.S", "method": "M"}], "timeout": "1s"},
            ]
        }
    )
    assert config.method_config("/a.S/M").timeout == 1.0
    assert config.method_config("/a.S/N").timeout == 2.0
    assert config.method_config("/b.S/M").timeout == 3.0
    # Looked up once, then cached: the same object every time.
    assert config.method_config("/a.S/M") is config.method_config("/a.S/M")
    assert not config.retries_configured


def test_empty_service_name_is_the_default_entry() -> None:
    config = ServiceConfig.parse({"methodConfig": [{"name": [{"service": ""}], "timeout": "1s"}]})
    assert config.method_config("/x.Y/Z").timeout == 1.0


def test_empty_and_absent_configs() -> None:
    for config in (ServiceConfig.parse({}), ServiceConfig.parse("{}")):
        assert config.method_config("/a.S/M") is NO_METHOD_CONFIG
        assert config.retry_throttling is None
        assert config.load_balancing_policy is None


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [("1s", 1.0), ("1.5s", 1.5), ("0.000000001s", 1e-9), ("0s", 0.0), ("100s", 100.0)],
)
def test_durations(duration: str, seconds: float) -> None:
    assert config_with(timeout=duration).method_config("/a.S/M").timeout == seconds


def test_max_attempts_above_five_counts_as_five() -> None:
    config = config_with(retryPolicy={**RETRY, "maxAttempts": 9})
    policy = config.method_config("/a.S/M").retry_policy
    assert policy is not None and policy.max_attempts == 5


def test_token_ratio_keeps_three_decimal_places() -> None:
    config = ServiceConfig.parse({"retryThrottling": {"maxTokens": 1000, "tokenRatio": 0.1239}})
    assert config.retry_throttling is not None
    assert config.retry_throttling.milli_token_ratio == 123
    assert config.retry_throttling.token_ratio == 0.123


def test_hedging_delay_defaults_to_zero() -> None:
    policy = config_with(hedgingPolicy={"maxAttempts": 2}).method_config("/a.S/M").hedging_policy
    assert policy == HedgingPolicy(max_attempts=2)


def test_legacy_load_balancing_policy_and_precedence() -> None:
    assert (
        ServiceConfig.parse({"loadBalancingPolicy": "ROUND_ROBIN"}).load_balancing_policy
        == "round_robin"
    )
    config = ServiceConfig.parse(
        {
            "loadBalancingPolicy": "round_robin",
            "loadBalancingConfig": [{"grpclb": {}}, {"pick_first": {}}, {"round_robin": {}}],
        }
    )
    assert config.load_balancing_policy == "pick_first"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{", "not valid JSON"),
        ([], "service config: a JSON object"),
        ({"methodConfig": {}}, "methodConfig: a JSON array"),
        ({"methodConfig": [{"name": [{"method": "M"}]}]}, "methodConfig[0].name[0]: a method"),
        (
            {"methodConfig": [{"name": [{"service": "s"}, {"service": "s"}]}]},
            "methodConfig[0].name[1]: service s is named twice",
        ),
        (
            {"methodConfig": [{"name": [{}]}, {"name": [{}]}]},
            "the default method config is named twice",
        ),
        ({"methodConfig": [{"name": [{}], "timeout": "1"}]}, "methodConfig[0].timeout"),
        ({"methodConfig": [{"name": [{}], "timeout": "-1s"}]}, "methodConfig[0].timeout"),
        ({"methodConfig": [{"name": [{}], "timeout": 1}]}, "methodConfig[0].timeout"),
        ({"methodConfig": [{"name": [{}], "waitForReady": "yes"}]}, "waitForReady"),
        ({"methodConfig": [{"name": [{}], "maxRequestMessageBytes": -1}]}, "maxRequestMessage"),
        ({"methodConfig": [{"name": [{}], "maxResponseMessageBytes": "x"}]}, "maxResponseMe"),
        (
            {"methodConfig": [{"name": [{}], "retryPolicy": RETRY, "hedgingPolicy": RETRY}]},
            "mutually exclusive",
        ),
        (
            {"methodConfig": [{"name": [{}], "retryPolicy": {**RETRY, "maxAttempts": 1}}]},
            "retryPolicy.maxAttempts: must be at least 2",
        ),
        (
            {"methodConfig": [{"name": [{}], "retryPolicy": {**RETRY, "maxAttempts": None}}]},
            "retryPolicy.maxAttempts: required",
        ),
        (
            {"methodConfig": [{"name": [{}], "retryPolicy": {**RETRY, "initialBackoff": "0s"}}]},
            "retryPolicy.initialBackoff: must be above 0s",
        ),
        (
            {"methodConfig": [{"name": [{}], "retryPolicy": {**RETRY, "maxBackoff": None}}]},
            "retryPolicy.maxBackoff: required",
        ),
        (
            {"methodConfig": [{"name": [{}], "retryPolicy": {**RETRY, "backoffMultiplier": 0}}]},
            "retryPolicy.backoffMultiplier: a number above 0",
        ),
        (
            {
                "methodConfig": [
                    {"name": [{}], "retryPolicy": {**RETRY, "retryableStatusCodes": []}}
                ]
            },
            "retryPolicy.retryableStatusCodes: must not be empty",
        ),
        (
            {
                "methodConfig": [
                    {"name": [{}], "retryPolicy": {**RETRY, "retryableStatusCodes": ["NOPE"]}}
                ]
            },
            "retryPolicy.retryableStatusCodes[0]: not a status code",
        ),
        (
            {
                "methodConfig": [
                    {"name": [{}], "retryPolicy": {**RETRY, "retryableStatusCodes": [99]}}
                ]
            },
            "retryableStatusCodes[0]: not a status code",
        ),
        (
            {
                "methodConfig": [
                    {"name": [{}], "hedgingPolicy": {"maxAttempts": 2, "hedgingDelay": "x"}}
                ]
            },
            "hedgingPolicy.hedgingDelay",
        ),
        (
            {"methodConfig": [{"name": [{}], "hedgingPolicy": {"hedgingDelay": "1s"}}]},
            "hedgingPolicy.maxAttempts: required",
        ),
        ({"retryThrottling": {"tokenRatio": 1}}, "retryThrottling.maxTokens: required"),
        ({"retryThrottling": {"maxTokens": 0, "tokenRatio": 1}}, "maxTokens: must be in"),
        ({"retryThrottling": {"maxTokens": 1001, "tokenRatio": 1}}, "maxTokens: must be in"),
        ({"retryThrottling": {"maxTokens": 10}}, "retryThrottling.tokenRatio: required"),
        ({"retryThrottling": {"maxTokens": 10, "tokenRatio": 0.0009}}, "at least 0.001"),
        ({"retryThrottling": {"maxTokens": 10, "tokenRatio": "1"}}, "tokenRatio: a number"),
        ({"loadBalancingConfig": [{"grpclb": {}}]}, "no supported policy"),
        ({"loadBalancingConfig": [{"a": {}, "b": {}}]}, "one policy name per entry"),
        ({"loadBalancingPolicy": "weighted"}, "unsupported policy"),
    ],
)
def test_invalid_configs_name_the_field(config: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ServiceConfig.parse(json.dumps(config) if not isinstance(config, str) else config)
