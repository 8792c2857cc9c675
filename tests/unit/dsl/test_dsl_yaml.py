"""The YAML front end: every construct, and errors with file, line and field."""

import os
import textwrap
from pathlib import Path

import pytest

from kaon.dsl.yaml_loader import load_yaml_file, load_yaml_text
from kaon.errors import DefinitionError
from kaon.model.params import bind_params
from kaon.model.specs import (
    NO_DEFAULT,
    Backoff,
    Const,
    Expr,
    FailureMode,
    ForeachSpec,
    LoopSpec,
    ParamType,
    StepSpec,
    SubworkflowSpec,
    TaskSpec,
    TriggerRule,
    WorkflowSpec,
)

STEPS_PY = """
def a(x=None, y=None):
    return x

def b(**kwargs):
    return kwargs
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "steps.py").write_text(STEPS_PY)
    return tmp_path


def load(folder: Path, text: str, name: str = "flow.yaml") -> WorkflowSpec:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return load_yaml_file(str(path))


def problems(folder: Path, text: str) -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(DefinitionError) as info:
        load(folder, text)
    found = []
    for p in info.value.problems:
        assert p.location.file == os.path.realpath(folder / "flow.yaml")
        found.append((p.location.line, p.location.field, p.message))
    return found


def step_of(spec: WorkflowSpec, step_id: str) -> StepSpec:
    for path, step in spec.graph.walk():
        if path.split(".")[-1] == step_id:
            return step
    raise AssertionError(step_id)


def test_tasks_params_and_defaults(folder: Path) -> None:
    spec = load(
        folder,
        """
        name: flow
        description: A flow.
        params:
          n: {type: int, default: 20, description: how many}
          k: 5
          ratio: 0.5
          tags: [a]
          needed: {type: str}
          anything: {description: free}
        defaults: {retry: {max_attempts: 2}, timeout: 10m, on_failure: finish_running, cache: true}
        timeout: 1h
        steps:
          - id: first
            python: steps.py:a
            inputs: {x: "${{ params.n }}", y: plain}
          - id: second
            python: os:getcwd
            needs: [first]
            retry:
              max_attempts: 3
              backoff: exponential
              delay: 1s
              max_delay: 30s
              retry_on: [ValueError]
            timeout: 30s
            on_failure: ignore
            cache: false
            cache_version: "2"
            trigger_rule: all_done
            description: joins
          - id: third
            shell: "echo hi"
          - id: fourth
            shell: {command: "echo $X", env: {X: "1"}, cwd: /tmp}
            retry: 4
          - id: fifth
            type: shell
            config: {command: "true"}
        output: fifth
        """,
    )
    assert (spec.name, spec.description, spec.timeout_s) == ("flow", "A flow.", 3600.0)
    params = {p.name: p for p in spec.params}
    assert (params["n"].type, params["n"].default, params["n"].description) == (
        ParamType.INT,
        20,
        "how many",
    )
    assert (params["k"].type, params["k"].default) == (ParamType.INT, 5)
    assert params["ratio"].type is ParamType.FLOAT
    assert params["tags"].type is ParamType.LIST
    assert (params["needed"].type, params["needed"].default) == (ParamType.STR, NO_DEFAULT)
    assert (params["anything"].type, params["anything"].required) == (ParamType.ANY, True)
    assert spec.defaults.retry.max_attempts == 2
    assert (spec.defaults.timeout_s, spec.defaults.cache) == (600.0, True)
    assert spec.defaults.on_failure is FailureMode.FINISH_RUNNING
    assert spec.graph.output == "fifth"

    first = step_of(spec, "first")
    assert isinstance(first, TaskSpec)
    assert first.config == {"file": os.path.realpath(folder / "steps.py"), "function": "a"}
    assert first.inputs == {"x": Expr("params.n"), "y": Const("plain")}
    assert (first.location.line, first.location.field) == (14, "steps[0]")

    second = step_of(spec, "second")
    assert isinstance(second, TaskSpec)
    assert second.config == {"function": "os:getcwd"}
    assert second.needs == ("first",)
    assert second.retry is not None
    assert (second.retry.max_attempts, second.retry.backoff) == (3, Backoff.EXPONENTIAL)
    assert (second.retry.delay_s, second.retry.max_delay_s, second.retry.retry_on) == (
        1.0,
        30.0,
        ("ValueError",),
    )
    assert (second.timeout_s, second.on_failure, second.cache) == (30.0, FailureMode.IGNORE, False)
    assert (second.cache_version, second.trigger_rule, second.description) == (
        "2",
        TriggerRule.ALL_DONE,
        "joins",
    )

    third = step_of(spec, "third").config  # type: ignore[attr-defined]
    assert third == {"command": "echo hi", "base_dir": str(folder.resolve())}  # runs there
    fourth = step_of(spec, "fourth")
    assert fourth.config == {  # type: ignore[attr-defined]
        "command": "echo $X",
        "env": {"X": "1"},
        "cwd": "/tmp",
        "base_dir": str(folder.resolve()),
    }
    assert fourth.retry is not None and fourth.retry.max_attempts == 4
    fifth = step_of(spec, "fifth")
    assert (fifth.step_type, fifth.config) == (  # type: ignore[attr-defined]
        "shell",
        {"command": "true", "base_dir": str(folder.resolve())},
    )


def test_input_values_templates_and_nesting(folder: Path) -> None:
    spec = load(
        folder,
        """
        name: flow
        params: {k: 2}
        steps:
          - id: a
            python: steps.py:a
          - id: b
            python: steps.py:b
            inputs:
              const: {x: [1, 2.5, null, true]}
              ref: "${{ steps.a.out }}"
              text: "model-${{ params.k }}"
              list: ["${{ steps.a }}", 3, "x"]
              map: {m: "${{ params.k * 2 }}", n: [1]}
              date: 2024-01-01
        """,
    )
    b = step_of(spec, "b")
    assert b.inputs == {
        "const": Const({"x": [1, 2.5, None, True]}),
        "ref": Expr("steps.a.out"),
        "text": Expr('"model-" + string(params.k)'),
        "list": Expr('[steps.a, 3, "x"]'),
        "map": Expr('{"m": (params.k * 2), "n": [1]}'),
        "date": Const("2024-01-01"),
    }


def test_foreach_loop_and_when(folder: Path) -> None:
    spec = load(
        folder,
        """
        name: flow
        params: {names: [a, b]}
        steps:
          - id: a
            python: steps.py:a
          - id: each
            foreach: "${{ steps.a.items }}"
            as: segment
            concurrency: 4
            output: fit
            steps:
              - id: fit
                python: steps.py:a
                inputs: {x: "${{ segment }}", y: "${{ index }}"}
              - id: inner
                foreach: segment.parts
                steps:
                  - id: deep
                    python: steps.py:a
                    inputs: {x: "${{ item }}"}
          - id: consts
            foreach: [1, 2]
            steps: [{id: c, python: "steps.py:a", inputs: {x: "${{ item }}"}}]
          - id: again
            loop: {until: "${{ steps.check.stable }}", max_iterations: 5, fail_on_exhausted: true}
            steps:
              - id: check
                python: steps.py:a
                inputs: {x: "${{ iteration }}"}
          - id: publish
            when: steps.again.passed && params.names.size() > 0
            python: steps.py:a
          - id: publish2
            when: "${{ steps.again.passed }}"
            python: steps.py:a
        """,
    )
    each = step_of(spec, "each")
    assert isinstance(each, ForeachSpec)
    assert (each.items, each.item_name, each.concurrency) == (Expr("steps.a.items"), "segment", 4)
    assert each.body.output == "fit"
    inner = step_of(spec, "inner")
    assert isinstance(inner, ForeachSpec)
    assert (inner.items, inner.item_name) == (Expr("segment.parts"), "item")
    consts = step_of(spec, "consts")
    assert isinstance(consts, ForeachSpec) and consts.items == Const([1, 2])
    again = step_of(spec, "again")
    assert isinstance(again, LoopSpec)
    assert (again.until, again.max_iterations, again.fail_on_exhausted) == (
        "steps.check.stable",
        5,
        True,
    )
    assert step_of(spec, "publish").when == "steps.again.passed && params.names.size() > 0"
    assert step_of(spec, "publish2").when == "steps.again.passed"


def test_subworkflows_are_resolved_and_embedded(folder: Path) -> None:
    (folder / "child.yaml").write_text(
        "name: child\nparams: {x: 1}\nsteps: [{id: s, shell: echo}]\n"
    )
    (folder / "flows.py").write_text(
        "import kaon\n\n@kaon.workflow\ndef pychild(y: int = 2):\n    kaon.shell('echo')\n"
    )
    spec = load(
        folder,
        """
        name: parent
        steps:
          - {id: one, workflow: child.yaml, inputs: {x: 3}}
          - {id: two, workflow: "child.yaml:child"}
          - {id: three, workflow: "flows.py:pychild", inputs: {y: 4}}
        """,
    )
    one, two, three = spec.graph.steps
    assert isinstance(one, SubworkflowSpec) and isinstance(three, SubworkflowSpec)
    assert one.workflow == "child" and one.spec is not None and one.spec.name == "child"
    assert one.inputs == {"x": Const(3)}
    assert two.spec == one.spec  # type: ignore[attr-defined]
    assert three.workflow == "pychild" and three.spec is not None


def test_subworkflow_problems(folder: Path) -> None:
    (folder / "loop_a.yaml").write_text("name: a\nsteps: [{id: s, workflow: loop_b.yaml}]\n")
    (folder / "loop_b.yaml").write_text("name: b\nsteps: [{id: s, workflow: loop_a.yaml}]\n")
    with pytest.raises(DefinitionError) as info:
        load(
            folder,
            """
            name: parent
            steps:
              - {id: one, workflow: missing.yaml}
              - {id: two, workflow: loop_a.yaml}
            """,
        )
    found = [(p.location.line, p.location.field, p.message) for p in info.value.problems]
    missing = f"workflow file not found ({folder / 'missing.yaml'})"
    message = f"subworkflow 'missing.yaml' cannot be loaded: {missing}"
    assert (4, "steps[0].workflow", message) in found
    # The file's own problem is folded into the step's: no second, unlocated problem.
    assert all(line is not None for line, _f, _m in found)
    text = "\n".join(m for _l, _f, m in found)
    assert "include each other" in text


def test_a_misspelt_retry_on_name_is_refused_at_its_line_and_field(folder: Path) -> None:
    """``retry_on: [ValueErorr]`` loaded, and the step was never retried on a ValueError."""
    with pytest.raises(DefinitionError) as info:
        load(
            folder,
            """
            name: flow
            steps:
              - id: fit
                shell: echo
                retry:
                  max_attempts: 3
                  retry_on: [TransientError, ValueErorr]
            """,
        )
    file = os.path.realpath(folder / "flow.yaml")
    assert str(info.value) == (
        f"{file}:8: steps[0].retry.retry_on[1]: step 'fit': retry.retry_on[1]: "
        "unknown exception type 'ValueErorr': did you mean 'ValueError'?"
    )


def test_expression_problems_are_one_line_at_their_field(folder: Path) -> None:
    """A parse error printed the parser's caret drawing over three lines, and a wait step's
    bad `match` was reported under `steps[1].match`, at the step's line."""
    with pytest.raises(DefinitionError) as info:
        load(
            folder,
            """
            name: parent
            steps:
              - id: a
                shell: echo
                inputs: {v: "${{ 1 + }}"}
              - id: w
                wait:
                  signal: go
                  match: "params.x == ("
            """,
        )
    found = {p.location.field: p for p in info.value.problems}
    assert set(found) == {"steps[0].inputs.v", "steps[1].wait.match"}
    for problem in found.values():
        assert "\n" not in problem.message and "at line 1, column" in problem.message
    assert found["steps[1].wait.match"].location.line == 10


def test_yaml_syntax_error_has_line_and_column(folder: Path) -> None:
    ((line, field, message),) = problems(
        folder, "name: x\nsteps:\n  - id: a\n    shell: {a: [1, 2}\n"
    )
    assert line == 4
    assert field is None
    assert "YAML syntax error at column" in message


def test_unknown_field_suggests_and_points_at_the_line(folder: Path) -> None:
    found = problems(
        folder,
        """
        name: x
        stpes: []
        steps:
          - id: a
            shell: echo
            tiemout: 5s
            retry: {max_attempt: 2}
        """,
    )
    assert (
        3,
        "stpes",
        "unknown field 'stpes' (did you mean 'steps'?); "
        "allowed: defaults, description, name, output, params, priority, steps, timeout, triggers",
    ) in found
    lines = {(line, field) for line, field, _m in found}
    assert (7, "steps[0].tiemout") in lines
    assert (8, "steps[0].retry.max_attempt") in lines
    assert any("did you mean 'timeout'" in m for _l, _f, m in found)
    assert any("did you mean 'max_attempts'" in m for _l, _f, m in found)


def test_wrong_types_and_bad_values(folder: Path) -> None:
    found = problems(
        folder,
        """
        name: x
        steps:
          - id: a
            shell: echo
            needs: b
          - id: b
            shell: 12
            concurrency: 2
          - id: c
            python: steps.py:a
            timeout: 10 minutes
            on_failure: explode
            cache: "yes"
        """,
    )
    by_field = {field: (line, message) for line, field, message in found}
    assert by_field["steps[0].needs"][0] == 6
    assert by_field["steps[1].shell"][0] == 8
    assert by_field["steps[1].concurrency"] == (9, "'concurrency' does not apply to a shell step")
    assert by_field["steps[2].timeout"][0] == 12
    assert "invalid duration" in by_field["steps[2].timeout"][1]
    assert by_field["steps[2].on_failure"][0] == 13
    assert "fail_fast" in by_field["steps[2].on_failure"][1]
    assert by_field["steps[2].cache"][0] == 14


def test_a_bad_field_hides_none_of_the_steps_other_problems(folder: Path) -> None:
    """A field pydantic refused made the whole step a stand-in: the problems of its body,
    its code and its expressions showed only once that field was fixed."""
    (folder / "steps.py").write_text("def b(v):\n    return v\n")
    found = problems(
        folder,
        """
        name: t
        steps:
          - id: f
            foreach: "${{ [1] }}"
            concurrency: -1
            steps:
              - {id: g, python: steps.py:b, inputs: {v: "${{ itm }}"}}
          - id: h
            python: steps.py:nothere
            retry: {max_attempts: "x"}
            needs: [nope]
        """,
    )
    by_field = {field: (line, message) for line, field, message in found}
    assert set(by_field) == {
        "steps[0].concurrency",
        "steps[0].steps[0].inputs.v",
        "steps[1].python",
        "steps[1].retry.max_attempts",
        "steps[1].needs",
    }
    assert "unknown variable 'itm'" in by_field["steps[0].steps[0].inputs.v"][1]
    assert "steps.py has no function 'nothere'" in by_field["steps[1].python"][1]
    assert "kaon_user" not in by_field["steps[1].python"][1]  # not the name Kaon imports it by
    assert by_field["steps[1].needs"] == (12, "step 'h' needs unknown step 'nope'")


def test_a_python_steps_inputs_must_fit_its_function(folder: Path) -> None:
    """The Python front end refuses a call that misses an argument; from YAML the step
    failed at run time with a TypeError and Kaon's traceback."""
    (folder / "p.py").write_text(
        "def f(a, b):\n    return a + b\n\ndef g(a, **kw):\n    return a\n"
    )
    found = problems(
        folder,
        """
        name: ym
        steps:
          - {id: s, python: p.py:f, inputs: {a: 1}}
          - {id: t, python: p.py:f, inputs: {a: 1, b: 2, c: 3}}
          - {id: u, python: p.py:g, inputs: {a: 1, zz: 2}}
        """,
    )
    assert found == [
        (4, "steps[0].inputs", "step 's': f() needs input 'b' (a parameter without a default)"),
        (5, "steps[1].inputs", "step 't': f() takes no input 'c' (its parameters: a, b)"),
    ]


def test_semantic_problems_point_at_the_field(folder: Path) -> None:
    found = problems(
        folder,
        """
        name: x
        params:
          k: {type: int, default: "five"}
        timeout: soon
        steps:
          - id: a
            python: steps.py:a
            inputs: {x: "${{ steps.nope }}"}
          - id: a
            shell: echo
          - id: c
            shell: echo
            needs: [d]
          - id: d
            shell: echo
            needs: [c]
          - id: e
            shell: echo
            when: "steps.c >"
          - id: f
            shell: echo
            inputs: {y: "${{ params.missing }}", z: "${{ unclosed"}
        """,
    )
    lines = {(line, field) for line, field, _m in found}
    text = "\n".join(f"{line} {field} {m}" for line, field, m in found)
    assert (4, "params.k.default") in lines, text
    assert (5, "timeout") in lines, text
    assert (9, "steps[0].inputs.x") in lines, text
    assert any(line == 10 and "duplicate step id 'a'" in m for line, _f, m in found), text
    assert any("cycle" in m for _l, _f, m in found), text
    assert (20, "steps[4].when") in lines, text
    assert (23, "steps[5].inputs.y") in lines, text
    assert any(line == 23 and "unclosed" in m for line, _f, m in found), text
    assert len(found) == 8, text
    assert [line for line, _f, _m in found] == sorted(line or 0 for line, _f, _m in found)


def test_step_kind_problems(folder: Path) -> None:
    found = problems(
        folder,
        """
        name: x
        steps:
          - id: none
            inputs: {a: 1}
          - id: two
            python: steps.py:a
            shell: echo
          - id: body
            foreach: [1]
          - id: conf
            python: steps.py:a
            config: {a: 1}
          - {id: target, python: no_colon}
          - just a string
        """,
    )
    text = "\n".join(m for _l, _f, m in found)
    assert "step 'none' needs one of: python, shell, type, workflow, wait, foreach, loop" in text
    assert "step 'two' has python and shell; choose one" in text
    assert "a foreach step needs 'steps'" in text
    assert "'config' does not apply to a python step" in text
    assert "expected FILE.py:FUNCTION or MODULE:FUNCTION" in text
    assert "a step must be a mapping" in text


def test_document_level_problems() -> None:
    cases = {
        "": "must be a mapping",
        "- a\n": "must be a mapping",
        "name: x\nname: y\nsteps: [{id: a, shell: echo}]\n": "duplicate key 'name'",
        "a: &a [*a]\nname: x\nsteps: [{id: a, shell: echo}]\n": "alias",
        "name: !custom x\nsteps: [{id: a, shell: echo}]\n": "cannot read value",
        "name: x\nsteps: [{id: a, shell: echo}]\n---\nname: y\n": "YAML syntax error",
        "steps: [{id: a, shell: echo}]\n": "missing required field 'name'",
        "name: x\nsteps: []\n": "has no steps",
        "name: x\nsteps: [{id: a, shell: .inf}]\n": "not a JSON number",
    }
    for text, fragment in cases.items():
        with pytest.raises(DefinitionError) as info:
            load_yaml_text(text, "/virtual/flow.yaml")
        assert fragment in str(info.value), (text, str(info.value))
        assert all(p.location.file == "/virtual/flow.yaml" for p in info.value.problems)


def test_merge_keys_work() -> None:
    text = "name: x\nsteps:\n  - &s {id: a, shell: echo, timeout: 5s}\n  - {<<: *s, id: b}\n"
    spec = load_yaml_text(text, "/virtual/flow.yaml")
    assert [(s.id, s.timeout_s) for s in spec.graph.steps] == [("a", 5.0), ("b", 5.0)]


def test_missing_file() -> None:
    with pytest.raises(DefinitionError, match="cannot read workflow file"):
        load_yaml_file("/no/such/flow.yaml")


def test_a_file_name_with_a_nul_byte_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    """Found by the flagship's mutation fuzz test: resolving such a name raised ValueError."""
    text = 'name: nul\nsteps:\n  - id: q\n    type: sql\n    config: {file: "a\\0b.sql"}\n'
    with pytest.raises(DefinitionError, match=r"steps\[0\]\.config\.file"):
        load_yaml_text(text, str(tmp_path / "flow.yaml"), base_dir=str(tmp_path))


def test_a_steps_retry_problems_are_listed_in_one_pass(folder: Path) -> None:
    """`max_attempts: 1001` was reported only after the bad `backoff` was fixed."""
    with pytest.raises(DefinitionError) as info:
        load(
            folder,
            """
            name: r
            steps:
              - id: a
                shell: echo hi
                retry: {max_attempts: 1001, backoff: exponentail}
            """,
        )
    fields = {p.location.field for p in info.value.problems}
    assert {"steps[0].retry.max_attempts", "steps[0].retry.backoff"} <= fields, fields


def test_platform_attempts_zero_is_accepted_and_a_bad_one_is_located(folder: Path) -> None:
    """README's limit is 0 to 1,000 for ``retry.platform_attempts`` (0: a lost attempt is
    not run again); ``platform_attempts: 0`` was refused, without file or line, as
    ``platform_attempts: must be an integer >= 1, got 0``, hiding the file's other
    problems."""
    spec = load(
        folder,
        """
        name: flow
        steps:
          - id: fit
            shell: echo
            retry: {max_attempts: 2, platform_attempts: 0}
        """,
    )
    retry = step_of(spec, "fit").retry
    assert retry is not None and retry.platform_attempts == 0
    found = problems(
        folder,
        """
        name: flow
        steps:
          - id: fit
            shell: echo
            retry: {max_attempts: 2, platform_attempts: 1001}
          - id: next
            shell: echo
            needs: [nope]
        """,
    )
    fields = {(line, field) for line, field, _m in found}
    assert (6, "steps[0].retry.platform_attempts") in fields, found
    assert (9, "steps[1].needs") in fields, found


def test_nullable_params_and_choices(folder: Path) -> None:
    spec = load(
        folder,
        """
        name: pick
        params:
          size: {choices: [small, large], default: small}
          k: {choices: [1, 2.5]}
          lr: {type: float, nullable: true, default: null}
          mode: {type: str, choices: [a, b], nullable: true}
        steps: [{id: s, shell: echo}]
        """,
    )
    params = {p.name: p for p in spec.params}
    assert (params["size"].type, params["size"].choices) == (ParamType.STR, ("small", "large"))
    assert params["k"].type is ParamType.FLOAT and params["k"].required
    assert params["lr"].nullable and params["lr"].default is None
    assert params["mode"].nullable and params["mode"].choices == ("a", "b")
    assert bind_params(spec, {"k": "1", "mode": "null"}, from_strings=True) == {
        "size": "small",
        "k": 1.0,
        "lr": None,
        "mode": None,
    }


def test_choice_and_null_problems_are_at_their_line_and_field(folder: Path) -> None:
    found = problems(
        folder,
        """
        name: pick
        params:
          size: {type: str, choices: [small, 3, small], default: big}
          lr: {type: float, default: null}
          empty: {choices: []}
        steps: [{id: s, shell: echo}]
        """,
    )
    assert (
        4,
        "params.size.choices",
        "choice 3 of parameter 'size' is not of its type str",
    ) in found
    assert (
        4,
        "params.size.choices",
        "choice 'small' of parameter 'size' is listed twice",
    ) in found
    assert (
        5,
        "params.lr.default",
        "default of parameter 'lr' must be of type float, got NoneType None "
        "(declare it nullable to accept null)",
    ) in found
    assert any(line == 6 and field == "params.empty.choices" for line, field, _m in found)


def test_a_sql_parameter_nothing_gives_is_a_problem_at_the_inputs(folder: Path) -> None:
    (folder / "q.sql").write_text("select $min_age as a, $nope as b, '$quoted' -- $comment\n")
    found = problems(
        folder,
        """
        name: sq
        params: {min_age: 3}
        steps:
          - id: q
            type: sql
            config: {file: q.sql, params: {other: 1}, result: row}
            inputs: {min_age: "${{ params.min_age }}"}
        """,
    )
    message = "step 'q': the query reads $nope, which no params entry and no input gives"
    assert found == [(8, "steps[0].inputs", message)]


def test_a_foreach_min_success_is_read_and_checked(folder: Path) -> None:
    spec = load(
        folder,
        """
        name: sweep
        steps:
          - id: fe
            foreach: "[1, 2, 3]"
            min_success: 0.5
            steps: [{id: t, shell: echo}]
        """,
    )
    fe = step_of(spec, "fe")
    assert isinstance(fe, ForeachSpec) and fe.min_success == 0.5
    found = problems(
        folder,
        """
        name: sweep
        steps:
          - id: fe
            foreach: "[1, 2, 3]"
            min_success: 1.5
            steps: [{id: t, shell: echo}]
          - id: s
            shell: echo
            min_success: 0.5
        """,
    )
    assert (
        6,
        "steps[0].min_success",
        "foreach 'fe': min_success must be a fraction in (0, 1] (0.8: 80 % of the items), got 1.5",
    ) in found
    assert (10, "steps[1].min_success", "'min_success' does not apply to a shell step") in found
