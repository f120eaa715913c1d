"""The NGSI-LD core @context (v1.8) as Python data, so that no code path needs the network for it.

`CORE_TERMS` maps every core term to its expansion: either the absolute IRI (a simple term
definition) or a term definition with `@id` and, where the specification gives them, `@type`
(a keyword or an absolute IRI) and `@container`. IRIs are written out in full; the two prefixes of
the published document (`ngsi-ld`, `geojson`) are terms of their own. Terms that the published
document maps to themselves (`attributeCount`, `attributeDetails`) expand against the default
vocabulary, as JSON-LD prescribes.

The core context of v1.8 is a superset of v1.6's and v1.7's; the URLs of those versions and of
v1.9 are all recognised as "the core context" (`CORE_CONTEXT_URLS`) and are never fetched.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

__all__ = [
    "CORE_CONTEXT_URL",
    "CORE_CONTEXT_URLS",
    "CORE_TERMS",
    "DEFAULT_VOCAB",
    "GEOJSON_NS",
    "NGSI_LD_NS",
    "CoreTermDefinition",
    "core_context_document",
    "is_core_context_url",
]

NGSI_LD_NS: Final = "https://uri.etsi.org/ngsi-ld/"
"""The NGSI-LD namespace: core terms and error types live under it."""

GEOJSON_NS: Final = "https://purl.org/geojson/vocab#"
"""The GeoJSON-LD vocabulary used by the core context for geometry terms."""

DEFAULT_VOCAB: Final = NGSI_LD_NS + "default-context/"
"""Where a term that no context defines expands to (`foo` → `…/default-context/foo`)."""

CORE_CONTEXT_URL: Final = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
"""The core context this project speaks: v1.8, as Orion-LD 1.12 does."""

CORE_CONTEXT_URLS: Final = frozenset(
    {
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.7.jsonld",
        CORE_CONTEXT_URL,
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld",
    }
)
"""Every URL that names the core context; resolving one never touches the network."""

CoreTermDefinition = str | Mapping[str, str]
"""An absolute IRI, a keyword (`@id`, `@type`), or `{"@id", "@type", "@container"}`."""

_N = NGSI_LD_NS
_G = GEOJSON_NS
_DC = "http://purl.org/dc/terms/"
_DATETIME = _N + "DateTime"


def _typed(iri: str, type_: str) -> Mapping[str, str]:
    return MappingProxyType({"@id": iri, "@type": type_})


def _contained(iri: str, container: str) -> Mapping[str, str]:
    return MappingProxyType({"@id": iri, "@container": container})


CORE_TERMS: Final[Mapping[str, CoreTermDefinition]] = MappingProxyType(
    {
        # Prefixes and keyword aliases.
        "ngsi-ld": _N,
        "geojson": _G,
        "id": "@id",
        "type": "@type",
        # Classes.
        "Attribute": _N + "Attribute",
        "AttributeList": _N + "AttributeList",
        "ContextSourceIdentity": _N + "ContextSourceIdentity",
        "ContextSourceNotification": _N + "ContextSourceNotification",
        "ContextSourceRegistration": _N + "ContextSourceRegistration",
        "Date": _N + "Date",
        "DateTime": _DATETIME,
        "EntityType": _N + "EntityType",
        "EntityTypeInfo": _N + "EntityTypeInfo",
        "EntityTypeList": _N + "EntityTypeList",
        "Feature": _G + "Feature",
        "FeatureCollection": _G + "FeatureCollection",
        "GeoProperty": _N + "GeoProperty",
        "GeometryCollection": _G + "GeometryCollection",
        "JsonProperty": _N + "JsonProperty",
        "LanguageProperty": _N + "LanguageProperty",
        "LineString": _G + "LineString",
        "ListProperty": _N + "ListProperty",
        "ListRelationship": _N + "ListRelationship",
        "MultiLineString": _G + "MultiLineString",
        "MultiPoint": _G + "MultiPoint",
        "MultiPolygon": _G + "MultiPolygon",
        "Notification": _N + "Notification",
        "Point": _G + "Point",
        "Polygon": _G + "Polygon",
        "Property": _N + "Property",
        "Relationship": _N + "Relationship",
        "Subscription": _N + "Subscription",
        "TemporalProperty": _N + "TemporalProperty",
        "Time": _N + "Time",
        "VocabProperty": _N + "VocabProperty",
        # Members.
        "accept": _N + "accept",
        "attributeCount": DEFAULT_VOCAB + "attributeCount",
        "attributeDetails": DEFAULT_VOCAB + "attributeDetails",
        "attributeList": _typed(_N + "attributeList", "@vocab"),
        "attributeName": _typed(_N + "attributeName", "@vocab"),
        "attributeNames": _typed(_N + "attributeNames", "@vocab"),
        "attributeTypes": _typed(_N + "attributeTypes", "@vocab"),
        "attributes": _typed(_N + "attributes", "@vocab"),
        "attrs": _N + "attrs",
        "avg": _contained(_N + "avg", "@list"),
        "bbox": _contained(_G + "bbox", "@list"),
        "cacheDuration": _N + "cacheDuration",
        "containedBy": _N + "isContainedBy",
        "contextSourceAlias": _N + "contextSourceAlias",
        "contextSourceExtras": _typed(_N + "contextSourceExtras", "@json"),
        "contextSourceInfo": _N + "contextSourceInfo",
        "contextSourceTimeAt": _typed(_N + "contextSourceTimeAt", _DATETIME),
        "contextSourceUptime": _N + "contextSourceUptime",
        "cooldown": _N + "cooldown",
        "coordinates": _contained(_G + "coordinates", "@list"),
        "createdAt": _typed(_N + "createdAt", _DATETIME),
        "csf": _N + "csf",
        "data": _N + "data",
        "dataset": _contained(_N + "hasDataset", "@index"),
        "datasetId": _typed(_N + "datasetId", "@id"),
        "deletedAt": _typed(_N + "deletedAt", _DATETIME),
        "description": _DC + "description",
        "detail": _N + "detail",
        "distinctCount": _contained(_N + "distinctCount", "@list"),
        "endAt": _typed(_N + "endAt", _DATETIME),
        "endTimeAt": _typed(_N + "endTimeAt", _DATETIME),
        "endpoint": _N + "endpoint",
        "entities": _N + "entities",
        "entity": _N + "entity",
        "entityCount": _N + "entityCount",
        "entityId": _typed(_N + "entityId", "@id"),
        "entityList": _contained(_N + "entityList", "@list"),
        "entityMap": _N + "hasEntityMap",
        "error": _N + "error",
        "errors": _N + "errors",
        "expandValues": _N + "expandValues",
        "expiresAt": _typed(_N + "expiresAt", _DATETIME),
        "features": _contained(_G + "features", "@set"),
        "format": _N + "format",
        "geoQ": _N + "geoQ",
        "geometry": _G + "geometry",
        "geometryProperty": _G + "geometryProperty",
        "geoproperty": _N + "geoproperty",
        "georel": _N + "georel",
        "idPattern": _N + "idPattern",
        "information": _N + "information",
        "instanceId": _typed(_N + "instanceId", "@id"),
        "isActive": _N + "isActive",
        "join": _N + "join",
        "joinLevel": _N + "hasJoinLevel",
        "json": _typed(_N + "hasJSON", "@json"),
        "jsonKeys": _N + "jsonKeys",
        "jsons": _contained(_N + "jsons", "@list"),
        "key": _N + "hasKey",
        "lang": _N + "lang",
        "languageMap": _contained(_N + "hasLanguageMap", "@language"),
        "languageMaps": _contained(_N + "hasLanguageMaps", "@list"),
        "lastFailure": _typed(_N + "lastFailure", _DATETIME),
        "lastNotification": _typed(_N + "lastNotification", _DATETIME),
        "lastSuccess": _typed(_N + "lastSuccess", _DATETIME),
        "linkedMaps": _N + "linkedMaps",
        "localOnly": _N + "localOnly",
        "location": _N + "location",
        "management": _N + "management",
        "managementInterval": _N + "managementInterval",
        "max": _contained(_N + "max", "@list"),
        "min": _contained(_N + "min", "@list"),
        "mode": _N + "mode",
        "modifiedAt": _typed(_N + "modifiedAt", _DATETIME),
        "notification": _N + "notification",
        "notificationTrigger": _N + "notificationTrigger",
        "notifiedAt": _typed(_N + "notifiedAt", _DATETIME),
        "notifierInfo": _N + "notifierInfo",
        "notUpdated": _N + "notUpdated",
        "object": _typed(_N + "hasObject", "@id"),
        "objectList": _contained(_N + "hasObjectList", "@list"),
        "objects": _contained(_N + "hasObjects", "@list"),
        "objectsLists": _contained(_N + "hasObjectsLists", "@list"),
        "objectType": _typed(_N + "hasObjectType", "@vocab"),
        "observationInterval": _N + "observationInterval",
        "observationSpace": _N + "observationSpace",
        "observedAt": _typed(_N + "observedAt", _DATETIME),
        "omit": _N + "omit",
        "operationSpace": _N + "operationSpace",
        "operations": _N + "operations",
        "pick": _N + "pick",
        "previousJson": _typed(_N + "hasPreviousJson", "@json"),
        "previousLanguageMap": _contained(_N + "hasPreviousLanguageMap", "@language"),
        "previousObject": _typed(_N + "hasPreviousObject", "@id"),
        "previousObjectList": _contained(_N + "hasPreviousObjectList", "@list"),
        "previousValue": _N + "hasPreviousValue",
        "previousValueList": _contained(_N + "hasPreviousValueList", "@list"),
        "previousVocab": _typed(_N + "hasPreviousVocab", "@vocab"),
        "properties": _G + "properties",
        "propertyNames": _typed(_N + "propertyNames", "@vocab"),
        "q": _N + "q",
        "reason": _N + "reason",
        "receiverInfo": _N + "receiverInfo",
        "refreshRate": _N + "refreshRate",
        "registrationId": _N + "registrationId",
        "registrationName": _N + "registrationName",
        "relationshipNames": _typed(_N + "relationshipNames", "@vocab"),
        "scope": _N + "scope",
        "scopeQ": _N + "scopeQ",
        "showChanges": _N + "showChanges",
        "startAt": _typed(_N + "startAt", _DATETIME),
        "status": _N + "status",
        "stddev": _contained(_N + "stddev", "@list"),
        "subscriptionId": _typed(_N + "subscriptionId", "@id"),
        "subscriptionName": _N + "subscriptionName",
        "success": _typed(_N + "success", "@id"),
        "sum": _contained(_N + "sum", "@list"),
        "sumsq": _contained(_N + "sumsq", "@list"),
        "sysAttrs": _N + "sysAttrs",
        "temporalQ": _N + "temporalQ",
        "tenant": _typed(_N + "tenant", "@id"),
        "throttling": _N + "throttling",
        "timeAt": _typed(_N + "timeAt", _DATETIME),
        "timeInterval": _N + "timeInterval",
        "timeout": _N + "timeout",
        "timeproperty": _N + "timeproperty",
        "timerel": _N + "timerel",
        "timesFailed": _N + "timesFailed",
        "timesSent": _N + "timesSent",
        "title": _DC + "title",
        "totalCount": _contained(_N + "totalCount", "@list"),
        "triggerReason": _N + "triggerReason",
        "typeList": _typed(_N + "typeList", "@vocab"),
        "typeName": _typed(_N + "typeName", "@vocab"),
        "typeNames": _typed(_N + "typeNames", "@vocab"),
        "unchanged": _N + "unchanged",
        "unitCode": _N + "unitCode",
        "updated": _N + "updated",
        "uri": _N + "uri",
        "value": _N + "hasValue",
        "valueList": _contained(_N + "hasValueList", "@list"),
        "valueLists": _contained(_N + "hasValueLists", "@list"),
        "values": _contained(_N + "hasValues", "@list"),
        "vocab": _typed(_N + "hasVocab", "@vocab"),
        "vocabs": _contained(_N + "hasVocabs", "@list"),
        "watchedAttributes": _typed(_N + "watchedAttributes", "@vocab"),
    }
)


def is_core_context_url(url: str) -> bool:
    """Whether `url` names the NGSI-LD core context (any of v1.6 to v1.9, or the unversioned)."""
    return url in CORE_CONTEXT_URLS


def core_context_document() -> dict[str, Any]:
    """A fresh JSON-LD document (`{"@context": {...}}`) holding the core context, to serve or store.

    The document uses absolute IRIs throughout, so it needs no prefix processing; it is
    equivalent to the published v1.8 file.
    """
    body: dict[str, Any] = {"@version": 1.1, "@protected": True}
    for term, definition in CORE_TERMS.items():
        body[term] = definition if isinstance(definition, str) else dict(definition)
    body["@vocab"] = DEFAULT_VOCAB
    return {"@context": body}
