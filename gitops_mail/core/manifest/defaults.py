"""The manifest as it takes effect: each setting its schema gives a default filled in.

``spf: {mx: true}`` and ``spf: {}`` publish the same record, so a plan that
compares manifests compares them with their defaults (``with_defaults``): a
default written out, or left out again, is no change. Defaults fill only
objects that are there (an absent ``spf:`` is no SPF record, not the default one).
"""

from __future__ import annotations

from collections.abc import Mapping

from gitops_mail.core.manifest.model import manifest_schema

Node = Mapping[str, object]


def with_defaults(data: object) -> object:
    """``data`` (a parsed manifest) with the schema's defaults in every object present."""
    schema = manifest_schema()
    return _fill(data, schema, schema, settings=True)


def defaults_of(data: object) -> object:
    """Only the defaults of ``data``'s objects, shaped like ``data``: what each setting
    that has a default would be if it were left out."""
    schema = manifest_schema()
    return _fill(data, schema, schema, settings=False)


def _fill(data: object, node: Node, root: Node, *, settings: bool) -> object:
    """``data`` with defaults filled in (``settings``), or its defaults alone."""
    node = _resolved(node, root)
    if isinstance(data, list):
        items = node.get("items")
        if not isinstance(items, Mapping):
            return data if settings else []
        return [_fill(v, items, root, settings=settings) for v in data]
    if not isinstance(data, dict):
        return data if settings else None
    properties = node.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    extra = node.get("additionalProperties")
    out: dict[object, object] = {}
    for key, value in data.items():
        sub = properties.get(key, extra)
        if isinstance(sub, Mapping) and isinstance(value, dict | list):
            out[key] = _fill(value, sub, root, settings=settings)
        elif settings:
            out[key] = value
    for key, sub in properties.items():
        if isinstance(sub, Mapping) and "default" in sub and (key not in out or not settings):
            out[key] = sub["default"]
    return out


def _resolved(node: Node, root: Node) -> Node:
    """``node``, or what its local ``$ref`` (``#/definitions/x``) names."""
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return node
    target: object = root
    for part in ref[2:].split("/"):
        target = target.get(part) if isinstance(target, Mapping) else None
    return target if isinstance(target, Mapping) else {}
