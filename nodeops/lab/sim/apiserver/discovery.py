"""Discovery documents: legacy (/api, /apis, /api/v1 ...) and aggregated (v2, v2beta1)."""

from __future__ import annotations

from typing import Any

from nodeops.lab.sim.apiserver.resources import GROUPS, VERBS, Resource, in_group

AGGREGATED_TYPES = {
    "v2": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    "v2beta1": "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
}


def api_versions(server_address: str) -> dict[str, Any]:
    """GET /api."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_entry(group: str, version: str) -> dict[str, Any]:
    gv = {"groupVersion": f"{group}/{version}", "version": version}
    return {"name": group, "versions": [gv], "preferredVersion": gv}


def api_group_list() -> dict[str, Any]:
    """GET /apis."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(g, v) for g, v in GROUPS],
    }


def api_group(group: str) -> dict[str, Any] | None:
    """GET /apis/GROUP."""
    for name, version in GROUPS:
        if name == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(name, version)}
    return None


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    """GET /api/v1 or /apis/GROUP/VERSION: an APIResourceList, subresources included."""
    resources = in_group(group, version)
    if not resources:
        return None
    entries: list[dict[str, Any]] = []
    for res in resources:
        entry: dict[str, Any] = {
            "name": res.plural,
            "singularName": res.singular,
            "namespaced": res.namespaced,
            "kind": res.kind,
            "verbs": list(VERBS),
        }
        if res.short_names:
            entry["shortNames"] = list(res.short_names)
        if res.categories:
            entry["categories"] = list(res.categories)
        entries.append(entry)
        for sub in res.subresources:
            sub_entry: dict[str, Any] = {
                "name": f"{res.plural}/{sub.name}",
                "singularName": "",
                "namespaced": res.namespaced,
                "kind": sub.kind,
                "verbs": list(sub.verbs),
            }
            if (sub.group, sub.version) != (res.group, res.version):
                sub_entry["group"] = sub.group
                sub_entry["version"] = sub.version
            entries.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": entries,
    }


def _aggregated_resource(res: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": res.plural,
        "responseKind": {"group": res.group, "version": res.version, "kind": res.kind},
        "scope": "Namespaced" if res.namespaced else "Cluster",
        "singularResource": res.singular,
        "verbs": list(VERBS),
    }
    if res.short_names:
        entry["shortNames"] = list(res.short_names)
    if res.categories:
        entry["categories"] = list(res.categories)
    if res.subresources:
        entry["subresources"] = [
            {
                "subresource": sub.name,
                "responseKind": {"group": sub.group, "version": sub.version, "kind": sub.kind},
                "verbs": list(sub.verbs),
            }
            for sub in res.subresources
        ]
    return entry


def aggregated(legacy: bool, version: str) -> dict[str, Any]:
    """Aggregated discovery: the core group for /api, the named groups for /apis."""
    groups = [("", "v1")] if legacy else list(GROUPS)
    items = []
    for group, gv in groups:
        items.append(
            {
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [
                    {
                        "version": gv,
                        "resources": [_aggregated_resource(r) for r in in_group(group, gv)],
                        "freshness": "Current",
                    }
                ],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }


def negotiate_aggregated(accept: str) -> str | None:
    """The aggregated discovery version the Accept header asks for first, if any."""
    for part in accept.split(","):
        params = dict(p.strip().partition("=")[::2] for p in part.split(";")[1:] if "=" in p)
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList":
            version = params.get("v", "")
            if version in AGGREGATED_TYPES:
                return version
    return None


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_root() -> dict[str, Any]:
    """GET /openapi/v3: one entry per group version."""
    versions = [("", "v1"), *GROUPS]
    return {
        "paths": {
            _gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash=sim"}
            for g, v in versions
        }
    }


def openapi_v3_group(path: str) -> dict[str, Any] | None:
    """GET /openapi/v3/api/v1 etc.: PATCH operations that declare the fieldValidation parameter.

    kubectl reads only that to decide on server-side field validation (instead of downloading
    the protobuf OpenAPI v2 schema); no schemas are served.
    """
    for group, version in [("", "v1"), *GROUPS]:
        if _gv_path(group, version) != path:
            continue
        paths: dict[str, Any] = {}
        for res in in_group(group, version):
            base = f"/{path}/namespaces/{{namespace}}/" if res.namespaced else f"/{path}/"
            paths[f"{base}{res.plural}/{{name}}"] = {
                "patch": {
                    "x-kubernetes-group-version-kind": {
                        "group": res.group,
                        "version": res.version,
                        "kind": res.kind,
                    },
                    "parameters": [
                        {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}
                    ],
                    "responses": {},
                }
            }
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "unversioned"},
            "paths": paths,
        }
    return None
