"""Schema drift seen by a real client: exactly the drifted field changes."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest

from chaos.drift import apply_patch, compile_ops, parse_path, select
from tests.chaos.conftest import DOC, url


def expected(mutate) -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    mutate(doc)
    return doc


CASES = [
    ({"op": "rename", "path": "$.customer.name", "to": "full_name"},
     lambda d: d["customer"].update(full_name=d["customer"].pop("name"))),
    ({"op": "retype", "path": "$.id", "to": "string"}, lambda d: d.update(id="7")),
    ({"op": "retype", "path": "$.items[*].qty", "to": "string"},
     lambda d: [i.update(qty=str(i["qty"])) for i in d["items"]]),
    ({"op": "remove", "path": "$.score"}, lambda d: d.pop("score")),
    ({"op": "set_null", "path": "$.customer.tier"}, lambda d: d["customer"].update(tier=None)),
    ({"op": "enum_drift", "path": "$.status"}, lambda d: d.update(status="ACTIVE")),
    ({"op": "enum_drift", "path": "$.status", "value": "enabled"},
     lambda d: d.update(status="enabled")),
    ({"op": "empty_array", "path": "$.items"}, lambda d: d.update(items=[])),
    ({"op": "stringify", "path": "$.customer"},
     lambda d: d.update(customer=json.dumps(DOC["customer"]))),
    ({"op": "wrap_list", "path": "$.status"}, lambda d: d.update(status=["active"])),
    ({"op": "add_field", "path": "$", "key": "deprecated", "value": True},
     lambda d: d.update(deprecated=True)),
    ({"op": "rename", "path": "$..sku", "to": "product_id"},
     lambda d: [i.update(product_id=i.pop("sku")) for i in d["items"]]),
]


@pytest.mark.parametrize(("fault", "mutate"), CASES, ids=[
    f"{c[0]['op']}:{c[0]['path']}" for c in CASES])
async def test_client_sees_only_the_drifted_field(upstream, make_proxy, fault, mutate):
    proxy = await make_proxy(upstream, [{"type": "schema_drift", **fault}])
    async with httpx.AsyncClient() as client:
        r = await client.get(url(proxy, "/doc"))
    assert r.json() == expected(mutate)
    assert r.json() != DOC
    assert int(r.headers["content-length"]) == len(r.content)
    assert proxy.injected_counts() == {"schema_drift-0": 1}


def _sample(proxy, name: str, labels: dict[str, str]) -> float:
    value = proxy.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_non_json_body_passes_unchanged_and_counts_as_skipped(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "schema_drift", "name": "drift",
                                         "op": "remove", "path": "$.id"}])
    async with httpx.AsyncClient() as client:
        r = await client.get(url(proxy, "/text"))
    assert r.text == "plain words, not JSON"
    labels = {"fault": "drift", "route": "r"}
    assert _sample(proxy, "chaos_faults_skipped_total", labels) == 1
    assert _sample(proxy, "chaos_faults_injected_total", labels) == 0


async def test_drift_applies_to_each_sse_data_event(upstream, make_proxy):
    proxy = await make_proxy(upstream, [{"type": "schema_drift", "op": "rename",
                                         "path": "$.choices[*].delta.content", "to": "text"}])
    async with httpx.AsyncClient() as client:
        r = await client.get(url(proxy, "/sse"))
    datas = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    assert [json.loads(d)["choices"][0]["delta"] for d in datas[:-1]] == [
        {"text": "Hel"}, {"text": "lo"}, {"text": "!"}]


def test_compiled_ops_are_rfc6902():
    ops = compile_ops(DOC, "rename", "$.customer.name", to="full_name")
    assert ops == [{"op": "move", "from": "/customer/name", "path": "/customer/full_name"}]
    assert compile_ops(DOC, "remove", "$.items[0]") == [{"op": "remove", "path": "/items/0"}]
    assert apply_patch({"a/b": 1}, [{"op": "remove", "path": "/a~1b"}]) == {}


def test_jsonpath_subset():
    assert select(DOC, parse_path("$.items[*].sku")) == [("items", 0, "sku"), ("items", 1, "sku")]
    assert select(DOC, parse_path("$['customer'][\"tags\"][-1]")) == [("customer", "tags", 1)]
    assert select(DOC, parse_path("$.missing.x")) == []
    with pytest.raises(ValueError, match="position"):
        parse_path("$.a[")
    with pytest.raises(ValueError):
        parse_path("a.b")


async def test_bad_drift_params_are_config_errors(upstream, make_proxy):
    from chaos.errors import ConfigError

    with pytest.raises(ConfigError, match="needs `to`"):
        await make_proxy(upstream, [{"type": "schema_drift", "op": "rename", "path": "$.a"}])
    with pytest.raises(ConfigError, match=r"faults\[0\]\.path"):
        await make_proxy(upstream, [{"type": "schema_drift", "op": "remove", "path": "$..["}])


def test_removing_several_list_items_removes_each_once():
    doc = {"a": [1, 2, 3], "b": {"x": 1, "y": 2}}
    assert apply_patch(doc, compile_ops(doc, "remove", "$.a[*]")) == {"a": [], "b": doc["b"]}
    assert apply_patch(doc, compile_ops(doc, "remove", "$.*")) == {}
    nested = [[1, 2], [3]]
    assert apply_patch(nested, compile_ops(nested, "remove", "$[*][*]")) == [[], []]
