"""Sending one sample notification to an endpoint, built as a broker builds it, and reporting
what the endpoint answered (`drehscheibe subscriptions test`).

HTTP(S): `POST` of the NGSI-LD Notification (`id`, `type`, `subscriptionId`, `notifiedAt`,
`data`) with `Content-Type: application/json` and the `Link` header of the subscription's
context (or `application/ld+json` with `@context` in every entity when the endpoint's `accept`
says so), `NGSILD-Tenant` for a named tenant and every receiverInfo pair as a header.
MQTT: the message `{"metadata": {headers}, "body": Notification}` published to the endpoint's
topic with the QoS of its notifierInfo; an MQTT endpoint gives no answer, so the report says
whether the MQTT broker took the message.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import orjson

from ngsi import format_datetime

__all__ = ["ProbeResult", "probe_endpoint", "sample_notification"]

_LINK_REL = "http://www.w3.org/ns/json-ld#context"
_EXCERPT = 300


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    """What one test notification got: `status` (HTTP; None for MQTT or no answer), the time
    it took, an excerpt of the answer's body, and `error` when it did not arrive."""

    endpoint: str
    notification_id: str
    elapsed_ms: float
    status: int | None = None
    body: str = ""
    error: str | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None and (self.status is None or 200 <= self.status < 300)

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "notificationId": self.notification_id,
            "ok": self.ok,
            "status": self.status,
            "elapsedMs": round(self.elapsed_ms, 1),
            "body": self.body,
            "error": self.error,
            "note": self.note,
        }


def sample_notification(
    subscription_id: str, entities: Sequence[Mapping[str, Any]], *, at: datetime | None = None
) -> dict[str, Any]:
    """An NGSI-LD Notification of `entities` for `subscription_id`, with a fresh id."""
    return {
        "id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
        "type": "Notification",
        "subscriptionId": subscription_id,
        "notifiedAt": format_datetime(at or datetime.now(UTC)),
        "data": [dict(entity) for entity in entities],
    }


def _headers(
    *,
    accept: str,
    context_url: str | None,
    tenant: str | None,
    receiver_info: Sequence[tuple[str, str]],
) -> dict[str, str]:
    headers: dict[str, str] = {}
    if accept == "application/ld+json":
        headers["Content-Type"] = "application/ld+json"
    else:
        headers["Content-Type"] = "application/json"
        if context_url:
            headers["Link"] = f'<{context_url}>; rel="{_LINK_REL}"; type="application/ld+json"'
    if tenant:
        headers["NGSILD-Tenant"] = tenant
    for key, value in receiver_info:
        headers[key] = value
    return headers


def probe_endpoint(
    uri: str,
    notification: Mapping[str, Any],
    *,
    accept: str = "application/json",
    context_url: str | None = None,
    tenant: str | None = None,
    receiver_info: Sequence[tuple[str, str]] = (),
    notifier_info: Sequence[tuple[str, str]] = (),
    timeout: float = 5.0,
    transport: httpx.BaseTransport | None = None,
) -> ProbeResult:
    """Send `notification` to `uri` once (no retries) and report the outcome."""
    body = dict(notification)
    if accept == "application/ld+json":
        body["data"] = [
            {**entity, "@context": [context_url] if context_url else []} for entity in body["data"]
        ]
    headers = _headers(
        accept=accept, context_url=context_url, tenant=tenant, receiver_info=receiver_info
    )
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("mqtt", "mqtts"):
        return _probe_mqtt(uri, body, headers, notifier_info, timeout)
    started = time.perf_counter()
    try:
        with httpx.Client(transport=transport, timeout=timeout, trust_env=False) as client:
            response = client.post(uri, content=orjson.dumps(body), headers=headers)
    except httpx.HTTPError as exc:
        return ProbeResult(
            endpoint=uri,
            notification_id=str(body["id"]),
            elapsed_ms=(time.perf_counter() - started) * 1000,
            error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
        )
    elapsed = (time.perf_counter() - started) * 1000
    text = response.text
    return ProbeResult(
        endpoint=uri,
        notification_id=str(body["id"]),
        elapsed_ms=elapsed,
        status=response.status_code,
        body=text[:_EXCERPT] + ("…" if len(text) > _EXCERPT else ""),
    )


def _probe_mqtt(
    uri: str,
    body: dict[str, Any],
    headers: dict[str, str],
    notifier_info: Sequence[tuple[str, str]],
    timeout: float,
) -> ProbeResult:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    parts = urlsplit(uri)
    info = {k.lower(): v for k, v in notifier_info}
    qos = int(info.get("mqtt-qos", "0")) if info.get("mqtt-qos", "0") in ("0", "1", "2") else 0
    version = mqtt.MQTTv5 if info.get("mqtt-version") == "mqtt5.0" else mqtt.MQTTv311
    topic = unquote(parts.path[1:])
    started = time.perf_counter()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"drehscheibe-test-{uuid.uuid4().hex[:10]}",
        protocol=version,
    )
    if parts.username:
        client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
    if parts.scheme == "mqtts":
        client.tls_set()
    payload = orjson.dumps({"metadata": headers, "body": body})
    try:
        client.connect(
            parts.hostname or "localhost",
            parts.port or (8883 if parts.scheme == "mqtts" else 1883),
            keepalive=30,
        )
        client.loop_start()
        try:
            message = client.publish(topic, payload, qos=qos)
            message.wait_for_publish(timeout=timeout)
            published = message.is_published()
        finally:
            client.disconnect()
            client.loop_stop()
    except (OSError, ValueError, RuntimeError) as exc:
        return ProbeResult(
            endpoint=uri,
            notification_id=str(body["id"]),
            elapsed_ms=(time.perf_counter() - started) * 1000,
            error=f"MQTT: {exc}",
        )
    elapsed = (time.perf_counter() - started) * 1000
    if not published:
        return ProbeResult(
            endpoint=uri,
            notification_id=str(body["id"]),
            elapsed_ms=elapsed,
            error=f"MQTT: the broker did not acknowledge the message within {timeout:g} s",
        )
    return ProbeResult(
        endpoint=uri,
        notification_id=str(body["id"]),
        elapsed_ms=elapsed,
        note=f"published to topic {topic!r} with QoS {qos}; MQTT gives no answer from the consumer",
    )
