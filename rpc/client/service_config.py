"""gRPC service configs: per-method timeouts, limits, retry and hedging policies.

A service config is what grpc's channels take as ``grpc.service_config``
(a JSON document; here a dict or its JSON text). Its schema is grpc's
(``doc/service_config.md`` and gRFC A6); this module parses and validates it
once, into frozen dataclasses, so that a call only looks its method up in a
dict (:meth:`ServiceConfig.method_config`).

Validation follows grpc's: a config that grpc would reject raises
:class:`ValueError` naming the field; unknown fields are ignored, as grpc
does (configs may carry fields for other implementations). Two of grpc's
quiet adjustments are kept: ``maxAttempts`` above 5 counts as 5, and
``tokenRatio`` keeps three decimal places (the rest is dropped).

Method names match as in grpc: a ``{"service", "method"}`` entry wins over a
``{"service"}`` one (every method of that service), which wins over the
default entry ``{}`` (every method of every service).
"""

from __future__ import annotations

import decimal
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..protocol.status import StatusCode

MAX_ATTEMPTS_LIMIT = 5
"""gRFC A6: a larger ``maxAttempts`` is treated as this."""

SUPPORTED_LOAD_BALANCING_POLICIES = ("pick_first", "round_robin")
"""The policies a ``loadBalancingConfig`` entry may choose here."""

_DURATION = re.compile(r"(\d+)(?:\.(\d{1,9}))?s\Z")


@dataclass(frozen=True)
class RetryPolicy:
    """Retry a failed attempt with exponential backoff (gRFC A6 ``retryPolicy``)."""

    max_attempts: int
    """Attempts in all, the first included (2 to 5)."""
    initial_backoff: float
    max_backoff: float
    backoff_multiplier: float
    retryable_status_codes: frozenset[StatusCode]


@dataclass(frozen=True)
class HedgingPolicy:
    """Send up to ``max_attempts`` copies, ``hedging_delay`` apart (gRFC A6 ``hedgingPolicy``)."""

    max_attempts: int
    hedging_delay: float = 0.0
    non_fatal_status_codes: frozenset[StatusCode] = frozenset()
    """Codes after which the next copy goes out at once instead of ending the call."""


@dataclass(frozen=True)
class RetryThrottling:
    """Channel-wide token bucket that stops retries and hedges while most calls fail."""

    max_tokens: int
    """The bucket's size (1 to 1000); retries need more than half of it."""
    milli_token_ratio: int
    """What a successful call gives back, in thousandths of a token (grpc's precision)."""

    @property
    def token_ratio(self) -> float:
        return self.milli_token_ratio / 1000


@dataclass(frozen=True)
class MethodConfig:
    """What the service config says about one method (None: not said)."""

    timeout: float | None = None
    wait_for_ready: bool | None = None
    max_request_message_bytes: int | None = None
    max_response_message_bytes: int | None = None
    retry_policy: RetryPolicy | None = None
    hedging_policy: HedgingPolicy | None = None


NO_METHOD_CONFIG = MethodConfig()
"""The config of a method that no entry names."""


@dataclass(frozen=True, eq=False)
class ServiceConfig:
    """A parsed service config; build it with :meth:`parse` (one may serve many channels)."""

    method_configs: Mapping[tuple[str, str], MethodConfig] = field(default_factory=dict)
    """By ``(service, method)``; ``method`` is ``""`` for a service-wide entry, and
    both are for the default entry."""
    retry_throttling: RetryThrottling | None = None
    load_balancing_policy: str | None = None
    """The policy chosen by ``loadBalancingConfig`` (the first supported entry) or the
    legacy ``loadBalancingPolicy``; None when the config names none."""
    _by_path: dict[str, MethodConfig] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Lookups made so far, by method path: a call pays one dict lookup."""

    @classmethod
    def parse(cls, config: ServiceConfig | Mapping[str, Any] | str) -> ServiceConfig:
        """Parse (and validate) a service config given as a dict or JSON text."""
        if isinstance(config, ServiceConfig):
            return config
        if isinstance(config, str):
            try:
                config = json.loads(config)
            except json.JSONDecodeError as exc:
                raise ValueError(f"service config: not valid JSON: {exc}") from None
        document = _object(config, "service config")
        return cls(
            method_configs=_method_configs(document.get("methodConfig")),
            retry_throttling=_retry_throttling(document.get("retryThrottling")),
            load_balancing_policy=_load_balancing_policy(document),
        )

    def method_config(self, path: str) -> MethodConfig:
        """The config for the method at ``path`` (``/package.Service/Method``)."""
        found = self._by_path.get(path)
        if found is None:
            found = self._by_path[path] = self._match(path)
        return found

    def _match(self, path: str) -> MethodConfig:
        service, _, method = path.lstrip("/").rpartition("/")
        configs = self.method_configs
        return (
            configs.get((service, method))
            or configs.get((service, ""))
            or configs.get(("", ""))
            or NO_METHOD_CONFIG
        )

    @property
    def retries_configured(self) -> bool:
        """Whether some method has a retry or hedging policy."""
        return any(
            config.retry_policy is not None or config.hedging_policy is not None
            for config in self.method_configs.values()
        )


# --- fields ------------------------------------------------------------------------


def _method_configs(value: object) -> dict[tuple[str, str], MethodConfig]:
    configs: dict[tuple[str, str], MethodConfig] = {}
    if value is None:
        return configs
    for index, entry in enumerate(_array(value, "methodConfig")):
        where = f"methodConfig[{index}]"
        entry = _object(entry, where)
        config = _method_config(entry, where)
        for name_index, name in enumerate(_array(entry.get("name", []), f"{where}.name")):
            key = _name(name, f"{where}.name[{name_index}]")
            if key in configs:
                raise ValueError(f"{where}.name[{name_index}]: {_describe(key)} is named twice")
            configs[key] = config
    return configs


def _name(value: object, where: str) -> tuple[str, str]:
    name = _object(value, where)
    service = _string(name.get("service", ""), f"{where}.service")
    method = _string(name.get("method", ""), f"{where}.method")
    if method and not service:
        raise ValueError(f"{where}: a method name needs its service")
    return service, method


def _describe(key: tuple[str, str]) -> str:
    service, method = key
    if not service:
        return "the default method config"
    return f"{service}/{method}" if method else f"service {service}"


def _method_config(entry: Mapping[str, Any], where: str) -> MethodConfig:
    retry = entry.get("retryPolicy")
    hedging = entry.get("hedgingPolicy")
    if retry is not None and hedging is not None:
        raise ValueError(f"{where}: retryPolicy and hedgingPolicy are mutually exclusive")
    timeout = entry.get("timeout")
    wait_for_ready = entry.get("waitForReady")
    if wait_for_ready is not None and not isinstance(wait_for_ready, bool):
        raise ValueError(f"{where}.waitForReady: a boolean, not {wait_for_ready!r}")
    return MethodConfig(
        timeout=None if timeout is None else _duration(timeout, f"{where}.timeout"),
        wait_for_ready=wait_for_ready,
        max_request_message_bytes=_optional_size(entry, "maxRequestMessageBytes", where),
        max_response_message_bytes=_optional_size(entry, "maxResponseMessageBytes", where),
        retry_policy=None if retry is None else _retry_policy(retry, f"{where}.retryPolicy"),
        hedging_policy=None
        if hedging is None
        else _hedging_policy(hedging, f"{where}.hedgingPolicy"),
    )


def _retry_policy(value: object, where: str) -> RetryPolicy:
    policy = _object(value, where)
    codes = _status_codes(
        _required(policy, "retryableStatusCodes", where), f"{where}.retryableStatusCodes"
    )
    if not codes:
        raise ValueError(f"{where}.retryableStatusCodes: must not be empty")
    return RetryPolicy(
        max_attempts=_max_attempts(policy, where),
        initial_backoff=_positive_duration(policy, "initialBackoff", where),
        max_backoff=_positive_duration(policy, "maxBackoff", where),
        backoff_multiplier=_positive_number(policy, "backoffMultiplier", where),
        retryable_status_codes=codes,
    )


def _hedging_policy(value: object, where: str) -> HedgingPolicy:
    policy = _object(value, where)
    delay = policy.get("hedgingDelay")
    return HedgingPolicy(
        max_attempts=_max_attempts(policy, where),
        hedging_delay=0.0 if delay is None else _duration(delay, f"{where}.hedgingDelay"),
        non_fatal_status_codes=_status_codes(
            policy.get("nonFatalStatusCodes", []), f"{where}.nonFatalStatusCodes"
        ),
    )


def _retry_throttling(value: object) -> RetryThrottling | None:
    if value is None:
        return None
    where = "retryThrottling"
    throttling = _object(value, where)
    max_tokens = _integer(_required(throttling, "maxTokens", where), f"{where}.maxTokens")
    if not 0 < max_tokens <= 1000:
        raise ValueError(f"{where}.maxTokens: must be in 1..1000, not {max_tokens}")
    ratio = _required(throttling, "tokenRatio", where)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        raise ValueError(f"{where}.tokenRatio: a number, not {ratio!r}")
    # Three decimal places, as grpc keeps (read from the decimal text: no float rounding).
    milli = int(decimal.Decimal(str(ratio)).scaleb(3).to_integral_value(decimal.ROUND_DOWN))
    if milli <= 0:
        raise ValueError(f"{where}.tokenRatio: must be at least 0.001, not {ratio!r}")
    return RetryThrottling(max_tokens=max_tokens, milli_token_ratio=milli)


def _load_balancing_policy(document: Mapping[str, Any]) -> str | None:
    configs = document.get("loadBalancingConfig")
    if configs is not None:
        names = []
        for index, entry in enumerate(_array(configs, "loadBalancingConfig")):
            policy = _object(entry, f"loadBalancingConfig[{index}]")
            if len(policy) != 1:
                raise ValueError(
                    f"loadBalancingConfig[{index}]: one policy name per entry, not {len(policy)}"
                )
            (name,) = policy
            _object(policy[name], f"loadBalancingConfig[{index}].{name}")
            names.append(name)
        for name in names:
            if name in SUPPORTED_LOAD_BALANCING_POLICIES:
                return name
        if names:
            raise ValueError(
                f"loadBalancingConfig: no supported policy among {names}"
                f" (supported: {', '.join(SUPPORTED_LOAD_BALANCING_POLICIES)})"
            )
    legacy = document.get("loadBalancingPolicy")
    if legacy is None:
        return None
    name = _string(legacy, "loadBalancingPolicy").lower()
    if name not in SUPPORTED_LOAD_BALANCING_POLICIES:
        raise ValueError(f"loadBalancingPolicy: unsupported policy {legacy!r}")
    return name


# --- values ------------------------------------------------------------------------


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: a JSON object, not {type(value).__name__}")
    return value


def _array(value: object, where: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{where}: a JSON array, not {type(value).__name__}")
    return list(value)


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: a string, not {value!r}")
    return value


def _required(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in mapping or mapping[key] is None:
        raise ValueError(f"{where}.{key}: required")
    return mapping[key]


def _integer(value: object, where: str) -> int:
    """A JSON integer; proto3 JSON also writes 64-bit integers as strings."""
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: an integer, not {value!r}")
    return value


def _optional_size(entry: Mapping[str, Any], key: str, where: str) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    size = _integer(value, f"{where}.{key}")
    if size < 0:
        raise ValueError(f"{where}.{key}: must not be negative, not {size}")
    return size


def _max_attempts(policy: Mapping[str, Any], where: str) -> int:
    attempts = _integer(_required(policy, "maxAttempts", where), f"{where}.maxAttempts")
    if attempts < 2:
        raise ValueError(f"{where}.maxAttempts: must be at least 2, not {attempts}")
    return min(attempts, MAX_ATTEMPTS_LIMIT)


def _positive_number(policy: Mapping[str, Any], key: str, where: str) -> float:
    value = _required(policy, key, where)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{where}.{key}: a number above 0, not {value!r}")
    return float(value)


def _positive_duration(policy: Mapping[str, Any], key: str, where: str) -> float:
    seconds = _duration(_required(policy, key, where), f"{where}.{key}")
    if seconds <= 0:
        raise ValueError(f"{where}.{key}: must be above 0s")
    return seconds


def _duration(value: object, where: str) -> float:
    """A protobuf JSON duration: ``"1.5s"``, ``"0.000001s"``, ``"10s"`` (not negative)."""
    text = _string(value, where)
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{where}: a duration such as '1.5s', not {text!r}")
    whole, fraction = match.groups()
    return int(whole) + (int(fraction.ljust(9, "0")) / 1e9 if fraction else 0.0)


def _status_codes(value: object, where: str) -> frozenset[StatusCode]:
    codes = set()
    for index, item in enumerate(_array(value, where)):
        try:
            if isinstance(item, str):
                code = StatusCode[item.upper()]
            elif isinstance(item, int) and not isinstance(item, bool):
                code = StatusCode(item)
            else:
                raise TypeError
        except (KeyError, ValueError, TypeError):
            raise ValueError(f"{where}[{index}]: not a status code: {item!r}") from None
        if code is StatusCode.OK:
            raise ValueError(f"{where}[{index}]: OK is not a failure")
        codes.add(code)
    return frozenset(codes)
