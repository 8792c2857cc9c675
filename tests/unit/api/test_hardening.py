"""The attack suite in process: authenticate first, bounded bodies, values that cannot break
reads, exact error statuses, no reflected Host."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import Any

import pytest

from kaon.api import guard
from kaon.api.deps import Services
from kaon.service.auth import LOCAL_PRINCIPAL
from kaon.service.safety import UnsafeValueError
from kaon.store import schema
from kaon.store.base import SignalRecord, WriteBatch
from kaon.store.registry import TokenRecord

HELLO = (
    "name: hello\nparams:\n  n: {type: int, default: 2}\nsteps:\n  - id: a\n    shell: echo hi\n"
)


def h(secret: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **extra}


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def test_anonymous_bodies_get_401_before_they_are_parsed(client: Any) -> None:
    for path in ("/signals", "/runs", "/workflows", "/tokens"):
        for content in (b"{not json", b"\xff\xfe", b"[" * 5000):
            answer = client.post(
                path, content=content, headers={"Content-Type": "application/json"}
            )
            assert answer.status_code == 401, (path, content[:5], answer.text)
    forged = client.post("/signals", content=b"{", headers=h("kaon_forged"))
    assert forged.status_code == 401


def test_bodies_over_the_limit_get_413_without_being_read(
    client: Any, tokens: dict[str, str]
) -> None:
    big = json.dumps({"name": "go", "params": {"x": "y" * 6_000_000}})
    answer = client.post("/signals", content=big, headers=h(tokens["operator"]))
    assert answer.status_code == 413 and answer.json()["error"] == "PayloadTooLarge"

    def chunks() -> Any:
        yield b'{"name": "go", "params": {"x": "'
        for _ in range(100):
            yield b"y" * 100_000
        yield b'"}}'

    streamed = client.post("/signals", content=chunks(), headers=h(tokens["operator"]))
    assert streamed.status_code == 413
    listed = client.get("/signals", headers=h(tokens["viewer"])).json()
    assert listed == []


def test_undecodable_and_deep_json_get_422_as_documented(
    client: Any, tokens: dict[str, str]
) -> None:
    for content in (b"\xff\xfe{}", b"{bad", b"[" * 100_000, json.dumps(nested(900)).encode()):
        answer = client.post(
            "/signals", content=content, headers=h(tokens["operator"], **_json_type())
        )
        assert answer.status_code == 422, (content[:10], answer.text)
        assert answer.json()["error"] == "ValidationError" or "nest" in answer.text


def _json_type() -> dict[str, str]:
    return {"Content-Type": "application/json"}


def test_values_that_would_break_reads_are_refused_with_422(
    client: Any, tokens: dict[str, str]
) -> None:
    assert client.post(
        "/workflows", json={"source": HELLO, "file_name": "hello.yaml"}, headers=h(tokens["owner"])
    ).is_success
    bad_token = '{"name": "t", "role": "viewer", "groups": ["\\ud800"]}'
    bad_signal = '{"name": "go", "params": {"k": "\\ud800"}}'
    bad_key = '{"properties": {"\\ud800": 1}}'
    deep_signal = json.dumps({"name": "go", "params": nested(900)})
    cases = [
        ("POST", "/tokens", bad_token, tokens["admin"]),
        ("POST", "/signals", bad_signal, tokens["operator"]),
        ("POST", "/signals", deep_signal, tokens["operator"]),
        ("PATCH", "/workflows/hello", bad_key, tokens["owner"]),
        ("POST", "/runs", '{"workflow": "hello", "labels": {"x": "\\udfff"}}', tokens["owner"]),
    ]
    for method, path, content, secret in cases:
        answer = client.request(method, path, content=content, headers=h(secret, **_json_type()))
        assert answer.status_code == 422, (path, answer.text)
    for path in ("/tokens", "/signals", "/audit", "/workflows", "/runs"):
        assert client.get(path, headers=h(tokens["admin"])).status_code == 200, path


def test_nan_and_infinity_are_refused_with_422_wherever_they_would_be_stored(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    """JSON has no NaN or Infinity (1e400 decodes to one), and the store writes standard JSON
    only: a workflow property holding one was a 500 ("Out of range float values are not
    JSON compliant"). Every body is checked once, naming the field."""
    assert client.post(
        "/workflows", json={"source": HELLO, "file_name": "hello.yaml"}, headers=h(tokens["owner"])
    ).is_success
    for number in ("NaN", "Infinity", "-Infinity", "1e400"):
        for method, path, content, secret in (
            ("PATCH", "/workflows/hello", f'{{"properties": {{"x": [{number}]}}}}', "owner"),
            ("POST", "/signals", f'{{"name": "go", "params": {{"x": {number}}}}}', "operator"),
        ):
            answer = client.request(
                method, path, content=content, headers=h(tokens[secret], **_json_type())
            )
            assert answer.status_code == 422, (path, number, answer.text)
            problem = answer.json()["problems"][0]
            assert "NaN and Infinity" in problem["message"], answer.text
            assert problem["field"] in ("body.properties.x.0", "body.params.x"), answer.text
        with pytest.raises(UnsafeValueError, match="NaN and Infinity"):
            services.registry.update("hello", LOCAL_PRINCIPAL, properties={"x": float(number)})
    assert client.get("/workflows/hello", headers=h(tokens["owner"])).json()["properties"] == {}


def test_reads_survive_bad_rows_stored_before_validation(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    services.auth.registry.add_token(
        TokenRecord("bad1", "bad", "h" * 64, "viewer", ["\ud800"], time.time())
    )
    with services.store.writing("bad rows") as conn:
        for params in ({"k": "\ud800"}, nested(900)):
            record = SignalRecord("go", params, time.time(), "x")
            values = {k: getattr(record, k) for k in record.__dataclass_fields__ if k != "id"}
            conn.execute(schema.signals.insert().values(**values))
    services.auth.audit("x", "workflow.update", "workflow:hello", {"\ud800": nested(900)})
    for path in ("/tokens", "/signals", "/audit"):
        answer = client.get(path, headers=h(tokens["admin"]))
        assert answer.status_code == 200, (path, answer.text[:300])
    groups = [t["groups"] for t in client.get("/tokens", headers=h(tokens["admin"])).json()]
    assert ["\ufffd"] in groups  # one replacement character per lone surrogate


def test_no_redirect_reflects_the_host_header(client: Any, tokens: dict[str, str]) -> None:
    answer = client.get(
        "/workflows/", headers=h(tokens["viewer"], Host="evil.example"), follow_redirects=False
    )
    assert answer.status_code == 404
    assert "evil.example" not in answer.headers.get("location", "")


def test_signals_are_listed_only_to_the_groups_they_may_reach(
    client: Any, tokens: dict[str, str]
) -> None:
    assert client.post(
        "/signals", json={"name": "ml_go", "params": {"k": 1}}, headers=h(tokens["operator"])
    ).is_success
    assert client.post("/signals", json={"name": "all_go"}, headers=h(tokens["admin"])).is_success
    names = {
        who: [s["name"] for s in client.get("/signals", headers=h(tokens[who])).json()]
        for who in ("operator", "stranger", "viewer")
    }
    assert names == {
        "operator": ["ml_go", "all_go"],
        "stranger": ["all_go"],
        "viewer": ["ml_go", "all_go"],  # a token without groups reads everything
    }


def test_a_page_of_signals_is_filled_past_those_of_other_groups(
    client: Any, tokens: dict[str, str]
) -> None:
    """The filter ran after the LIMIT: five signals of another group made ``limit=5`` an
    empty page, with no id to go on from, while a newer signal was readable."""
    for n in range(5):
        sent = client.post("/signals", json={"name": f"theirs{n}"}, headers=h(tokens["stranger"]))
        assert sent.is_success, sent.text
    sent = client.post("/signals", json={"name": "ours"}, headers=h(tokens["operator"]))
    assert sent.is_success, sent.text
    page = client.get("/signals", params={"limit": 5}, headers=h(tokens["operator"]))
    assert [s["name"] for s in page.json()] == ["ours"]
    assert page.headers["Kaon-Scanned-To"] == str(sent.json()["id"])
    after = client.get(
        "/signals",
        params={"limit": 5, "after": page.headers["Kaon-Scanned-To"]},
        headers=h(tokens["operator"]),
    )
    assert after.json() == [] and after.headers["Kaon-Scanned-To"] == str(sent.json()["id"])


def test_the_run_list_shows_another_groups_runs_without_their_params_or_error(
    client: Any, tokens: dict[str, str]
) -> None:
    """``GET /runs`` lists every run (names), but what ``GET /runs/ID`` refuses a token
    outside the workflow's group (parameters, the error) it does not show either."""
    owner = h(tokens["owner"])
    pushed = client.post(
        "/workflows", json={"source": HELLO, "file_name": "hello.yaml"}, headers=owner
    )
    assert pushed.status_code < 300, pushed.text
    run = client.post("/runs", json={"workflow": "hello", "params": {"n": 7}}, headers=owner)
    assert run.status_code < 300, run.text
    run_id = run.json()["id"]
    assert client.get(f"/runs/{run_id}", headers=h(tokens["stranger"])).status_code == 403
    listed = {
        who: next(
            r for r in client.get("/runs", headers=h(tokens[who])).json() if r["id"] == run_id
        )
        for who in ("stranger", "operator", "viewer")
    }
    assert listed["stranger"]["workflow"] == "hello" and listed["stranger"]["params"] == {}
    assert listed["operator"]["params"] == {"n": 7}  # its group's run
    assert listed["viewer"]["params"] == {"n": 7}  # a token without groups reads everything
    by_workflow = client.get("/runs", params={"workflow": "hello"}, headers=h(tokens["stranger"]))
    assert [r["params"] for r in by_workflow.json()] == [{}]


def test_a_briefly_unreachable_database_is_a_503_to_retry(
    client: Any, tokens: dict[str, str], services: Services, monkeypatch: Any
) -> None:
    """Not a 500 (a bug): the request wrote nothing and may be sent again."""
    from kaon.errors import StoreUnavailableError

    def down(**_: Any) -> Any:
        raise StoreUnavailableError("store x: reading failed: the server closed the connection")

    monkeypatch.setattr(services.runs, "list_runs", down)
    answer = client.get("/runs", headers=h(tokens["viewer"]))
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert answer.json()["error"] == "StoreUnavailableError"


def test_another_group_reads_a_workflows_name_not_its_properties(
    client: Any, tokens: dict[str, str]
) -> None:
    """Properties hold alert webhook URLs (bearer secrets): any token read another group's."""
    owner, stranger = h(tokens["owner"]), h(tokens["stranger"])
    pushed = client.post(
        "/workflows", json={"source": HELLO, "file_name": "hello.yaml"}, headers=owner
    )
    assert pushed.status_code < 300, pushed.text
    hook = "https://hooks.example.com/services/SECRETTOKEN"
    patch = {"properties": {"alerts": {"on_failure": [hook]}}}
    assert client.patch("/workflows/hello", json=patch, headers=owner).status_code == 200
    assert hook in client.get("/workflows/hello", headers=owner).text  # its group sees it
    assert hook in client.get("/workflows/hello", headers=h(tokens["viewer"])).text
    one = client.get("/workflows/hello", headers=stranger)
    listed = client.get("/workflows", headers=stranger)
    assert (one.status_code, listed.status_code) == (200, 200)
    assert one.json()["properties"] == {} and "SECRETTOKEN" not in listed.text
    assert [w["name"] for w in listed.json()] == ["hello"]  # names stay listed


@pytest.mark.parametrize("unreachable", [False, True])
def test_a_store_failure_answer_names_no_database_detail(
    client: Any, tokens: dict[str, str], services: Services, monkeypatch: Any, unreachable: bool
) -> None:
    """A 500 or 503 carried the store's URL (host, port, account, database), the SQL text and
    its parameters to any caller; they are for the server's log."""
    from kaon.errors import StoreError, StoreUnavailableError

    raw = (
        "store postgresql+psycopg://kaon_db_user@10.0.0.5:55440/kaon: reading failed: "
        "(psycopg.DataError) boom\n[SQL: SELECT runs.id FROM runs WHERE runs.id = %(run_id)s]"
    )
    error = StoreUnavailableError if unreachable else StoreError

    def broken(**_: Any) -> Any:
        raise error(raw)

    monkeypatch.setattr(services.runs, "list_runs", broken)
    answer = client.get("/runs", headers=h(tokens["viewer"]))
    assert answer.status_code == (503 if unreachable else 500)
    message = answer.json()["message"]
    assert not [bit for bit in ("postgresql", "55440", "SELECT", "kaon_db_user") if bit in message]


def test_a_big_body_is_checked_off_the_event_loop(
    client: Any, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Walking megabytes of JSON happens in a worker thread, not on the event loop that
    answers every other request (``/healthz`` included); a small body is checked inline."""
    checked_on: list[str] = []
    real = guard._json_problem

    def spy(body: bytes) -> Any:
        checked_on.append(threading.current_thread().name)
        return real(body)

    monkeypatch.setattr(guard, "_json_problem", spy)
    loop = client.portal.call(lambda: threading.current_thread().name)
    big = {"name": "go", "params": {"n": [[0, 1]] * 20_000}}
    client.post("/signals", json=big, headers=h(tokens["operator"]))
    client.post("/signals", json={"name": "go"}, headers=h(tokens["operator"]))
    assert checked_on[0] != loop and checked_on[1] == loop, (checked_on, loop)


def test_a_viewer_write_is_refused_before_its_body_is_read(
    client: Any, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The route's role is checked first: a viewer's 5 MB ``POST /runs`` costs no parsing."""
    parsed: list[int] = []
    real = guard._json_problem
    monkeypatch.setattr(guard, "_json_problem", lambda body: parsed.append(1) or real(body))
    body = {"workflow": "nope", "params": {"n": [[0, 1]] * 200_000}}
    answer = client.post("/runs", json=body, headers=h(tokens["viewer"]))
    assert answer.status_code == 403 and "this needs operator" in answer.json()["message"]
    assert parsed == []
    admin_only = client.post("/tokens", json={"name": "x"}, headers=h(tokens["operator"]))
    assert admin_only.status_code == 403 and parsed == []
    allowed = client.post("/signals", json={"name": "go"}, headers=h(tokens["operator"]))
    assert allowed.status_code in (200, 201) and parsed == [1]


def test_an_answer_lists_the_first_50_problems_and_counts_the_rest(
    client: Any, tokens: dict[str, str]
) -> None:
    extra = {f"k{i}": 1 for i in range(20_000)}
    answer = client.post("/signals", json={"name": "go", **extra}, headers=h(tokens["operator"]))
    assert answer.status_code == 422
    problems = answer.json()["problems"]
    assert len(problems) == 50 and len(answer.content) < 20_000
    assert answer.json()["message"].endswith("and 19,950 more problems")


def test_a_viewers_write_and_a_body_for_no_route_stay_small(
    client: Any, tokens: dict[str, str]
) -> None:
    """A viewer may rotate its own token (a few fields): 5 MB sent there, or to a path that
    names no route, is refused as too large before it is read."""
    big = json.dumps({"expires_in": [{}] * 700_000})
    mine = client.get("/whoami", headers=h(tokens["viewer"])).json()
    rotate = f"/tokens/{mine.get('id', 'x')}/rotate"
    for path in (rotate, "/nonexistent", "/runs/"):
        answer = client.post(path, content=big, headers=h(tokens["viewer"], **_json_type()))
        assert answer.status_code == 413, (path, answer.status_code)
    small = client.post("/signals", json={"name": "go"}, headers=h(tokens["operator"]))
    assert small.status_code in (200, 201)


BLOB_FLOW = """
import kaon


@kaon.step
def secret() -> str:
    return "CONFIDENTIAL " * 4000


@kaon.workflow
def blobby() -> None:
    secret()
"""


def test_a_blob_prefix_reveals_nothing_of_another_groups_blobs(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    """A 4-digit prefix used to resolve among every blob before the read check, and the 404
    named the full hash (and worded "unknown prefix" differently): walking the 65,536
    prefixes gave a stranger every hash in the store."""
    owner = h(tokens["owner"])
    pushed = client.post(
        "/workflows", json={"source": BLOB_FLOW, "file_name": "blobby.py"}, headers=owner
    )
    assert pushed.status_code < 300, pushed.text
    run_id = client.post("/runs", json={"workflow": "blobby"}, headers=owner).json()["id"]
    services.runs.execute(run_id)
    [record] = services.store.artifacts(run_id=run_id, limit=10)
    full = record.hash
    free = next(p for p in (f"{i:04x}" for i in range(65536)) if not full.startswith(p))
    for given in (full[:4], full[:12], full):
        mine = client.get(f"/artifacts/{given}", headers=owner)
        assert mine.status_code == 200 and mine.json()["hash"] == full
        theirs = client.get(f"/artifacts/{given}", headers=h(tokens["stranger"]))
        unknown = client.get(f"/artifacts/{free}", headers=h(tokens["stranger"]))
        assert theirs.status_code == unknown.status_code == 404
        assert given == full or full not in theirs.text  # the full hash: the caller's own text
        assert theirs.json()["message"].replace(given, "X") == unknown.json()["message"].replace(
            free, "X"
        )
        for route in ("blob", "lineage"):
            answer = client.get(f"/artifacts/{given}/{route}", headers=h(tokens["stranger"]))
            assert answer.status_code == 404 and (given == full or full not in answer.text)


POOL_FLOW = """
import kaon


@kaon.step(pool="small")
def hit() -> int:
    return 1


@kaon.workflow
def pooled() -> None:
    hit()
"""


def test_a_definition_error_names_the_pushed_file_not_the_servers_copy(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    """Starting a run whose step names a pool that does not exist is a 422 naming the
    problem at ``pooled.py:12`` (the call); it named the bundle's path under the server's home."""
    owner = h(tokens["owner"])
    pushed = client.post(
        "/workflows", json={"source": POOL_FLOW, "file_name": "pooled.py"}, headers=owner
    )
    assert pushed.status_code < 300, pushed.text
    answer = client.post("/runs", json={"workflow": "pooled"}, headers=owner)
    assert answer.status_code == 422, answer.text
    home = str(services.registry.sources_dir.parent)
    assert home not in answer.text and "sources/" not in answer.text
    body = answer.json()
    assert body["message"].startswith("pooled.py:12: pool: ")
    assert [(p["file"], p["line"]) for p in body["problems"]] == [("pooled.py", 12)]


SOURCED_FLOW = """
import kaon


class Source:
    def __init__(self, value: str) -> None:
        self.value = value

    def read(self) -> str:
        return self.value


SOURCE = Source(VALUE)


@kaon.step(cache=True)
def load(day: str) -> str:
    return SOURCE.read() + day


@kaon.workflow
def NAME(day: str = "2024") -> None:
    load(day)
"""


def test_another_group_cannot_poison_or_reuse_a_groups_cache_entries(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    """Cache keys did not name the owner group: a stranger pushed the same step (same file
    name and function; a client object is not covered by the fingerprint) with its own data,
    ran it with ``no_cache`` (the newest execution under a key is the one reused), and the
    group's next run reused the stranger's output; the stranger's runs reused the group's."""
    owner, stranger = h(tokens["owner"]), h(tokens["stranger"])

    def push(headers: dict[str, str], name: str, value: str) -> None:
        source = SOURCED_FLOW.replace("NAME", name).replace("VALUE", repr(value))
        pushed = client.post(
            "/workflows", json={"source": source, "file_name": "flow.py"}, headers=headers
        )
        assert pushed.status_code < 300, pushed.text

    def run(headers: dict[str, str], workflow: str, **extra: Any) -> tuple[str, Any]:
        run_id = client.post("/runs", json={"workflow": workflow, **extra}, headers=headers)
        run_id = run_id.json()["id"]
        services.runs.execute(run_id)
        step = client.get(f"/runs/{run_id}/steps/load", headers=headers).json()
        outputs = client.get(f"/runs/{run_id}/outputs", params={"path": "load"}, headers=headers)
        return step["status"], outputs.json()["outputs"]

    push(owner, "genuine", "ours ")
    push(stranger, "forged", "POISON ")
    assert run(owner, "genuine")[0] == "succeeded"
    status, outputs = run(stranger, "forged")  # the group's entry is not the stranger's
    assert status == "succeeded" and "POISON" in str(outputs)
    run(stranger, "forged", no_cache=True)  # the newest execution under its key
    status, outputs = run(owner, "genuine")
    assert status == "cached" and "POISON" not in str(outputs) and "ours" in str(outputs)


SHARED_FLOW = """
import kaon


@kaon.step
def common() -> str:
    return "PUBLIC " * 4000


@kaon.step
def private(text: str) -> str:
    return "NAME only " * 4000


@kaon.workflow
def NAME() -> None:
    private(common())
"""


def _shared_runs(client: Any, pushers: tuple[tuple[str, dict[str, str]], ...]) -> dict[str, str]:
    """Push SHARED_FLOW as each ``(name, headers)`` and create a run of it: name -> run id."""
    runs: dict[str, str] = {}
    for name, headers in pushers:
        source = SHARED_FLOW.replace("NAME", name)
        pushed = client.post(
            "/workflows", json={"source": source, "file_name": f"{name}.py"}, headers=headers
        )
        assert pushed.status_code < 300, pushed.text
        runs[name] = client.post("/runs", json={"workflow": name}, headers=headers).json()["id"]
    return runs


def test_a_run_token_reads_no_other_run_in_lineage(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    """A run token's principal has no groups, and a token without groups read everything:
    a step's lineage of an output another group's run also produced listed that run and the
    hash of its private output (which a step may then read from the artifact store)."""
    owner, stranger = h(tokens["owner"]), h(tokens["stranger"])
    runs = _shared_runs(client, (("ours", owner), ("theirs", stranger)))
    for run_id in runs.values():
        services.runs.execute(run_id)
    assert services.auth.run_tokens is not None
    step = h(services.auth.run_tokens.mint(runs["theirs"]))
    for headers in (stranger, step):
        lineage = client.get(
            f"/runs/{runs['theirs']}/lineage", params={"path": "common"}, headers=headers
        )
        assert lineage.status_code == 200, lineage.text
        seen = {p["run_id"] for p in lineage.json()["producers"]}
        seen |= {c["run_id"] for c in lineage.json()["consumers"]}
        assert seen == {runs["theirs"]}


def test_a_blob_another_group_made_a_thousand_times_first_is_still_readable(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    """Only a hash's first 1,000 producer rows were looked at: once another group had made
    the same bytes that often, a reader of the group's own run got 404."""
    owner, stranger = h(tokens["owner"]), h(tokens["stranger"])
    runs = _shared_runs(client, (("theirs", stranger), ("ours", owner)))
    services.runs.execute(runs["theirs"])
    (made,) = [a for a in services.store.artifacts(run_id=runs["theirs"]) if a.path == "common"]
    copies = [dataclasses.replace(made, id=None) for _ in range(1000)]
    services.store.write(WriteBatch(artifacts=copies))  # the same bytes, made 1,001 times
    services.runs.execute(runs["ours"])
    answer = client.get(f"/artifacts/{made.hash}", headers=owner)
    assert answer.status_code == 200, answer.text
