"""The Python front end: what each construct records, and the errors users see."""

import os
import subprocess
import sys
import types
from typing import Any, Literal, Optional

import pytest

import kaon
from kaon.errors import DefinitionError, ParameterError
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

HERE = os.path.realpath(__file__)


@kaon.step
def load(n: int = 3) -> list[int]:
    return list(range(n))


@kaon.step
def combine(a: Any, b: Any = None, **extra: Any) -> Any:
    return [a, b, extra]


@kaon.step(
    id="fit",
    retry=kaon.Retry(max_attempts=3, backoff="exponential", delay="1s", retry_on=[ValueError]),
    timeout="10m",
    on_failure="ignore",
    cache=True,
    cache_version="2",
    trigger_rule="all_done",
)
def fit_model(data: Any, k: int = 5) -> str:
    return f"model-{k}"


@kaon.step
def positional_only(a: Any, /) -> Any:
    return a


def step_of(spec: WorkflowSpec, step_id: str) -> StepSpec:
    for path, step in spec.graph.walk():
        if path.split(".")[-1] == step_id:
            return step
    raise AssertionError(f"no step {step_id}")


def problems_of(wf: kaon.Workflow) -> list[tuple[int | None, str]]:
    with pytest.raises(DefinitionError) as info:
        _ = wf.spec
    return [(p.location.line, p.message) for p in info.value.problems]


def test_a_step_outside_a_workflow_is_a_plain_function() -> None:
    assert load(2) == [0, 1]
    assert fit_model("x", k=2) == "model-2"
    assert fit_model.options(id="other")("x") == "model-5"
    assert load.fn(1) == [0]
    assert load.__name__ == "load"


def test_recording_builds_tasks_with_inputs_config_and_call_site() -> None:
    lines: dict[str, int] = {}

    @kaon.workflow
    def flow(n: int = 4) -> None:
        lines["a"] = sys._getframe().f_lineno + 1
        a = load(n=n)
        b = load()
        combine(a, b["x"], extra=[a, 1])

    spec = flow.spec
    a, b, c = spec.graph.steps
    assert isinstance(a, TaskSpec)
    assert (a.id, b.id, c.id) == ("load", "load_2", "combine")
    assert a.step_type == "python"
    assert a.config == {"file": HERE, "function": "load"}  # a loose module is named by file
    assert a.inputs == {"n": Expr("params.n")}
    assert b.inputs == {}  # defaults not passed are left to the function
    assert c.inputs == {
        "a": Expr("steps.load"),
        "b": Expr("steps.load_2.x"),
        "extra": Expr("[steps.load, 1]"),
    }
    assert (a.location.file, a.location.line) == (HERE, lines["a"])


def test_step_options_from_the_decorator_and_per_call() -> None:
    @kaon.workflow
    def flow(x: int = 0) -> None:
        data = load()
        fit_model(data)
        fit_model.options(id="fast", timeout=30, retry=2, needs=[data], when="params.x > 1")(data)

    spec = flow.spec
    fit = step_of(spec, "fit")
    assert fit.retry is not None
    assert fit.retry.max_attempts == 3
    assert fit.retry.backoff is Backoff.EXPONENTIAL
    assert fit.retry.delay_s == 1.0
    assert fit.retry.retry_on == ("ValueError",)
    assert fit.timeout_s == 600.0
    assert fit.on_failure is FailureMode.IGNORE
    assert (fit.cache, fit.cache_version) == (True, "2")
    assert fit.trigger_rule is TriggerRule.ALL_DONE
    fast = step_of(spec, "fast")
    assert fast.timeout_s == 30.0
    assert fast.retry is not None and fast.retry.max_attempts == 2
    assert fast.needs == ("load",)
    assert fast.when == "params.x > 1"


def test_params_come_from_the_signature() -> None:
    @kaon.workflow
    def flow(
        a: int,
        b: float = 0.5,
        c: str = "x",
        d: bool = True,
        e: list[int] = [],  # noqa: B006
        f: dict[str, Any] = {},  # noqa: B006
        g: Any = None,
        h=3,
        i: int | None = None,
    ) -> None:
        load(n=a)

    params = {p.name: p for p in flow.spec.params}
    assert params["a"].type is ParamType.INT and params["a"].default is NO_DEFAULT
    assert [params[n].type for n in "bcdefghi"] == [
        ParamType.FLOAT,
        ParamType.STR,
        ParamType.BOOL,
        ParamType.LIST,
        ParamType.DICT,
        ParamType.ANY,
        ParamType.INT,
        ParamType.INT,
    ]
    assert params["i"].nullable and not params["a"].nullable
    assert params["b"].default == 0.5
    assert params["a"].location.file == HERE


def test_optional_and_literal_annotations_declare_nullable_params_and_choices() -> None:
    @kaon.workflow
    def flow(
        size: Literal["small", "large"] = "small",
        lr: Optional[float] = None,  # noqa: UP045 (the spelling users write)
        k: Literal[1, 2, 3] = 2,
        mode: Literal["a", "b"] | None = None,
        mixed: Literal[1, 2.5] = 1,
        either: int | str = 1,
    ) -> None:
        load(n=k)

    params = {p.name: p for p in flow.spec.params}
    assert (params["size"].type, params["size"].choices) == (ParamType.STR, ("small", "large"))
    assert (params["lr"].type, params["lr"].nullable) == (ParamType.FLOAT, True)
    assert (params["k"].type, params["k"].choices) == (ParamType.INT, (1, 2, 3))
    assert params["mode"].nullable and params["mode"].choices == ("a", "b")
    assert params["mixed"].type is ParamType.FLOAT
    assert params["either"].type is ParamType.ANY and not params["either"].nullable
    assert bind_params(flow.spec, {"lr": "null", "mode": "b"}, from_strings=True) == {
        "size": "small",
        "lr": None,
        "k": 2,
        "mode": "b",
        "mixed": 1.0,
        "either": 1,
    }
    with pytest.raises(ParameterError) as caught:
        bind_params(flow.spec, {"size": "smal", "k": 4, "lr": "x"}, from_strings=True)
    messages = [p.message for p in caught.value.problems]
    assert (
        "parameter 'size' must be one of 'small', 'large'; got 'smal'; did you mean 'small'?"
        in messages
    )
    assert "parameter 'k' must be one of 1, 2, 3; got 4" in messages
    assert "parameter 'lr': expected a float, got 'x'" in messages


def test_a_literal_default_outside_its_choices_is_a_definition_problem() -> None:
    @kaon.workflow
    def flow(size: Literal["small", "large"] = "medium") -> None:  # type: ignore[assignment]
        load(n=1)

    assert any(
        "default of parameter 'size' must be one of 'small', 'large'; got 'medium'" in m
        for _l, m in problems_of(flow)
    )


def test_refs_build_cel() -> None:
    @kaon.workflow
    def flow(k: int = 2) -> None:
        check = load()
        combine(check["score"] > 0.8, (check["ok"] & ~check["bad"]) | (k * 2 >= 3))
        combine(check[0]["a-b"], kaon.expr("params.k * 2"), x=f"model-{check['name']}")
        combine(-check["n"] + 1, 10 - check["n"] % 3, x=check["n"] != None)  # noqa: E711

    c1, c2, c3 = flow.spec.graph.steps[1:]
    assert c1.inputs["a"] == Expr("steps.load.score > 0.8")
    assert c1.inputs["b"] == Expr("(steps.load.ok && (!steps.load.bad)) || ((params.k * 2) >= 3)")
    assert c2.inputs["a"] == Expr('steps.load[0]["a-b"]')
    assert c2.inputs["b"] == Expr("params.k * 2")
    assert c2.inputs["x"] == Expr('"model-" + string(steps.load.name)')
    assert c3.inputs["a"] == Expr("(-steps.load.n) + 1")
    assert c3.inputs["b"] == Expr("10 - (steps.load.n % 3)")
    assert c3.inputs["x"] == Expr("steps.load.n != null")


def test_branching_on_a_ref_is_a_clear_error() -> None:
    lines: dict[str, int] = {}

    @kaon.workflow
    def flow() -> None:
        check = load()
        lines["if"] = sys._getframe().f_lineno + 1
        if check["ok"]:
            load()

    ((line, message),) = problems_of(flow)
    assert line == lines["if"]
    assert "kaon.when(...) instead of if" in message


def test_iterating_a_ref_is_a_clear_error() -> None:
    @kaon.workflow
    def flow() -> None:
        for _item in load():
            pass

    ((_line, message),) = problems_of(flow)
    assert "kaon.foreach" in message


def test_constants_must_be_json() -> None:
    lines: dict[str, int] = {}

    class Frame:
        pass

    @kaon.workflow
    def flow() -> None:
        lines["bad"] = sys._getframe().f_lineno + 1
        load(n=Frame())
        combine({"k": (1, 2)}, [1.5, None, "s"])

    ((line, message),) = problems_of(flow)
    assert line == lines["bad"]
    assert "Frame cannot be passed as a constant" in message


def test_json_values_become_consts() -> None:
    @kaon.workflow
    def flow() -> None:
        combine({"k": (1, 2)}, [1.5, None, "s"])

    (step,) = flow.spec.graph.steps
    assert step.inputs == {"a": Const({"k": [1, 2]}), "b": Const([1.5, None, "s"])}


def test_foreach_records_a_body_with_item_and_index() -> None:
    @kaon.workflow
    def flow() -> Any:
        rows = load()
        with kaon.foreach(rows["items"], concurrency=4, id="each") as each:
            m = fit_model(each.item, k=each.index)
            combine(m, rows)
            each.output(m)
        return each

    spec = flow.spec
    each = spec.graph.steps[1]
    assert isinstance(each, ForeachSpec)
    assert each.items == Expr("steps.load.items")
    assert (each.concurrency, each.item_name) == (4, "item")
    assert [s.id for s in each.body.steps] == ["fit", "combine"]
    assert each.body.steps[0].inputs == {"data": Expr("item"), "k": Expr("index")}
    assert each.body.steps[1].inputs["b"] == Expr("steps.load")
    assert each.body.output == "fit"
    assert spec.graph.output == "each"


def test_foreach_over_a_constant_list_and_a_cel_string() -> None:
    @kaon.workflow
    def flow(names: list[str] = ["a"]) -> None:  # noqa: B006
        with kaon.foreach([1, 2, 3]) as a:
            load(n=a.item)
        with kaon.foreach("params.names", as_="name") as b:
            combine(b.item)

    first, second = flow.spec.graph.steps
    assert isinstance(first, ForeachSpec) and isinstance(second, ForeachSpec)
    assert first.items == Const([1, 2, 3])
    assert (second.id, second.items, second.item_name) == (
        "foreach_2",
        Expr("params.names"),
        "name",
    )
    assert second.body.steps[0].inputs == {"a": Expr("name")}


def test_nested_foreach_gets_its_own_item_name() -> None:
    @kaon.workflow
    def flow() -> None:
        with kaon.foreach([[1], [2]]) as outer, kaon.foreach(outer.item) as inner:
            combine(outer.item, inner.item, index=inner.index)

    (outer,) = flow.spec.graph.steps
    assert isinstance(outer, ForeachSpec)
    inner = outer.body.steps[0]
    assert isinstance(inner, ForeachSpec)
    assert (outer.item_name, inner.item_name) == ("item", "item_1")
    assert inner.items == Expr("item")
    assert inner.body.steps[0].inputs == {
        "a": Expr("item"),
        "b": Expr("item_1"),
        "index": Expr("index"),
    }


def test_scoped_values_outside_their_scope_are_reported_where_used() -> None:
    lines: dict[str, int] = {}

    @kaon.workflow
    def flow() -> None:
        with kaon.foreach([[1]]) as outer, kaon.foreach(outer.item) as inner:
            lines["index"] = sys._getframe().f_lineno + 1
            combine(outer.index)
        lines["item"] = sys._getframe().f_lineno + 1
        load(n=inner.item)

    problems = problems_of(flow)
    assert (lines["index"], "'index' of a foreach is only visible inside its own body") in problems
    assert (lines["item"], "'item_1' of a foreach is only visible inside its own body") in problems


def test_loop_with_until_string_and_until_method() -> None:
    @kaon.workflow
    def flow() -> None:
        with kaon.loop(until="steps.check.stable", max_iterations=5, id="again") as lp:
            combine.options(id="check")(lp.iteration)
        with kaon.loop(fail_on_exhausted=True) as lp2:
            c = load(n=lp2.iteration)
            lp2.until(c["done"] == True)  # noqa: E712

    first, second = flow.spec.graph.steps
    assert isinstance(first, LoopSpec) and isinstance(second, LoopSpec)
    assert (first.id, first.until, first.max_iterations) == ("again", "steps.check.stable", 5)
    assert first.body.steps[0].inputs == {"a": Expr("iteration")}
    assert (second.id, second.until, second.fail_on_exhausted) == (
        "loop",
        "steps.load.done == true",
        True,
    )


def test_loop_without_until_is_reported() -> None:
    @kaon.workflow
    def flow() -> None:
        with kaon.loop():
            load()

    ((_line, message),) = problems_of(flow)
    assert "needs a stop condition" in message


def test_when_blocks_nest_and_combine_with_options() -> None:
    @kaon.workflow
    def flow(go: bool = True) -> None:
        check = load()
        with kaon.when(check["passed"]):
            load.options(id="one")()
            with kaon.when(go):
                load.options(id="two", when="params.go || false")()
                with kaon.foreach([1]):
                    load.options(id="inner")()
        load.options(id="after")()

    spec = flow.spec
    assert step_of(spec, "one").when == "steps.load.passed"
    assert step_of(spec, "two").when == "steps.load.passed && params.go && (params.go || false)"
    assert step_of(spec, "foreach").when == "steps.load.passed && params.go"
    assert step_of(spec, "inner").when is None
    assert step_of(spec, "after").when is None


def test_shell_task_and_subworkflow() -> None:
    @kaon.workflow(name="child")
    def child(x: int, y: str = "a") -> None:
        load(n=x)

    @kaon.workflow
    def parent() -> None:
        data = load()
        kaon.shell("echo $X", id="say", env={"X": "1"}, inputs={"n": data["n"]}, needs=[data])
        kaon.task("shell", {"command": "true"}, id="query", inputs={"k": 1}, timeout="5s")
        kaon.subworkflow(child, id="sub", x=data["n"], when=data["ok"])

    spec = parent.spec
    say = step_of(spec, "say")
    assert isinstance(say, TaskSpec)
    here = os.path.dirname(os.path.realpath(__file__))  # a shell step runs in its folder
    assert (say.step_type, say.config) == (
        "shell",
        {"command": "echo $X", "env": {"X": "1"}, "base_dir": here},
    )
    assert say.inputs == {"n": Expr("steps.load.n")}
    assert say.needs == ("load",)
    query = step_of(spec, "query")
    assert isinstance(query, TaskSpec)
    assert (query.step_type, query.timeout_s) == ("shell", 5.0)
    assert query.config == {"command": "true", "base_dir": here}
    assert query.inputs == {"k": Const(1)}
    sub = step_of(spec, "sub")
    assert isinstance(sub, SubworkflowSpec)
    assert (sub.workflow, sub.spec) == ("child", child.spec)
    assert sub.inputs == {"x": Expr("steps.load.n")}
    assert sub.when == "steps.load.ok"


def test_an_unknown_step_type_is_reported_at_the_call() -> None:
    lines: dict[str, int] = {}

    @kaon.workflow
    def flow() -> None:
        lines["task"] = sys._getframe().f_lineno + 1
        kaon.task("no_such_type", {"query": "select 1"})

    ((line, message),) = problems_of(flow)
    assert line == lines["task"]
    assert "unknown step type 'no_such_type'" in message


def test_workflow_options_and_spec_caching() -> None:
    @kaon.workflow(
        name="named",
        description="About it.",
        timeout="1h",
        retry=3,
        on_failure="finish_running",
        cache=True,
        step_timeout="5m",
    )
    def flow() -> None:
        """Docstring loses to the explicit description."""
        load()

    spec = flow.spec
    assert flow.spec is spec
    assert (spec.name, spec.description, spec.timeout_s) == ("named", "About it.", 3600.0)
    assert spec.defaults.retry.max_attempts == 3
    assert spec.defaults.on_failure is FailureMode.FINISH_RUNNING
    assert (spec.defaults.cache, spec.defaults.timeout_s) == (True, 300.0)
    assert spec.location.file == HERE


def test_docstring_is_the_default_description() -> None:
    @kaon.workflow
    def flow() -> None:
        """Trains things."""
        load()

    assert flow.spec.description == "Trains things."
    assert flow.name == "flow"


def test_calling_a_workflow_explains_what_to_do() -> None:
    @kaon.workflow
    def flow() -> None:
        load()

    with pytest.raises(DefinitionError, match="kaon run"):
        flow()


def test_bad_options_fail_at_decoration() -> None:
    with pytest.raises(DefinitionError, match="timeout"):
        kaon.step(timeout="soon")
    with pytest.raises(DefinitionError, match="unknown step option 'retries'"):
        kaon.step(retries=3)  # type: ignore[call-overload]
    with pytest.raises(DefinitionError, match="not one of"):
        load.options(on_failure="explode")
    with pytest.raises(DefinitionError, match="unknown workflow option"):
        kaon.workflow(colour="red")(lambda: None)  # type: ignore[call-overload]
    with pytest.raises(DefinitionError) as info:
        kaon.Retry(max_attempts=0, backoff="linear", delay="later", retry_on=[3])  # type: ignore[list-item]
    assert len(info.value.problems) == 4


def test_platform_attempts_may_be_zero() -> None:
    """README: ``retry.platform_attempts`` is 0 to 1,000; ``kaon.Retry(platform_attempts=0)``
    (never rerun an attempt the platform lost) was refused as ``must be an integer >= 1``."""
    assert kaon.Retry(max_attempts=2, platform_attempts=0).platform_attempts == 0
    with pytest.raises(DefinitionError, match="platform_attempts"):
        kaon.Retry(platform_attempts=-1)


def test_a_misspelt_retry_on_name_is_refused() -> None:
    """``retry_on=["ValueErorr"]`` was accepted and never matched; an empty name was
    refused at ``kaon.Retry`` with another message, and is now refused where the rest are."""
    retry = kaon.Retry(max_attempts=2, retry_on=[ConnectionError, "ValueErorr", ""])

    @kaon.workflow
    def flow() -> None:
        load.options(id="fit", retry=retry)()

    assert [m for _line, m in problems_of(flow)] == [
        "step 'fit': retry.retry_on[1]: unknown exception type 'ValueErorr': "
        "did you mean 'ValueError'?",
        "step 'fit': retry.retry_on[2]: an exception type name cannot be empty",
    ]


def test_every_problem_is_listed_at_once() -> None:
    @kaon.workflow
    def flow() -> None:
        a = load(n=object())
        positional_only(a)
        combine(kaon.expr("steps.nowhere"), kaon.expr("params.unknown"))
        load.options(id="a1", needs=["missing"])()
        with kaon.foreach([1]):
            pass

    messages = [m for _line, m in problems_of(flow)]
    assert len(messages) == 6, messages
    text = "\n".join(messages)
    for fragment in (
        "cannot be passed as a constant",
        "positional-only",
        "'nowhere'",
        "'unknown'",
        "'missing'",
        "empty body",
    ):
        assert fragment in text


def test_binding_errors_name_the_step() -> None:
    @kaon.workflow
    def flow() -> None:
        load(1, 2, 3)

    ((_line, message),) = problems_of(flow)
    assert "cannot call step 'load'" in message


def test_unused_foreach_and_bad_return_are_reported() -> None:
    @kaon.workflow
    def flow() -> Any:
        load()
        kaon.foreach([1])
        return 42

    text = "\n".join(m for _l, m in problems_of(flow))
    assert "returns one of its top-level steps" in text

    @kaon.workflow
    def flow2() -> None:
        load()
        kaon.foreach([1])

    ((_line, message),) = problems_of(flow2)
    assert "must be used in a with statement" in message


def test_errors_raised_by_the_workflow_function_are_located() -> None:
    lines: dict[str, int] = {}

    @kaon.workflow
    def flow() -> None:
        load()
        lines["raise"] = sys._getframe().f_lineno + 1
        raise RuntimeError("oops")

    ((line, message),) = problems_of(flow)
    assert line == lines["raise"]
    assert "RuntimeError: oops" in message


def test_nested_step_functions_are_rejected() -> None:
    @kaon.step
    def local_step() -> int:
        return 1

    @kaon.workflow
    def flow() -> None:
        local_step()

    assert local_step() == 1
    assert any("define it at module level" in m for _l, m in problems_of(flow))


def test_a_step_defined_in_a_notebook_cell_is_refused_saying_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A Jupyter cell's code is compiled under a file name that is not on disk, in a module
    # with no file (ipykernel's user namespace): no worker could import the step.
    cell = types.ModuleType("kaon_test_notebook_main")
    monkeypatch.setitem(sys.modules, cell.__name__, cell)
    code = compile(
        "import kaon\n@kaon.step\ndef double(x: int) -> int:\n    return 2 * x\n",
        "/tmp/ipykernel_4242/1234567.py",
        "exec",
    )
    exec(code, cell.__dict__)

    @kaon.workflow
    def flow() -> None:
        cell.double(3)

    problem = next(m for _l, m in problems_of(flow) if "notebook" in m)
    assert "defined in a notebook cell or an interactive session" in problem
    assert "/tmp/ipykernel_4242/1234567.py, not a file on disk" in problem
    assert "from steps import double" in problem


def test_dsl_constructs_outside_a_workflow() -> None:
    with pytest.raises(DefinitionError, match=r"inside a @kaon\.workflow"):
        kaon.foreach([1])
    with pytest.raises(DefinitionError, match=r"inside a @kaon\.workflow"):
        kaon.shell("echo")


def test_a_workflow_including_itself_is_reported() -> None:
    @kaon.workflow
    def flow() -> None:
        kaon.subworkflow(flow)

    assert any("includes itself" in m for _l, m in problems_of(flow))


def test_import_kaon_stays_light() -> None:
    code = (
        "import sys, kaon\n"
        "names = ('pandas', 'sqlalchemy', 'pydantic', 'yaml', 'numpy')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(','.join(heavy))\n"
        "assert callable(kaon.context) and kaon.WorkflowSpec and kaon.load_workflow\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_python_config_names_modules_workers_can_import() -> None:
    import json.decoder
    import posixpath

    from kaon.dsl.python import python_config

    assert python_config(posixpath.join) == ({"function": "posixpath:join"}, None)
    assert python_config(json.decoder.JSONDecoder.decode) == (
        {"function": "json.decoder:JSONDecoder.decode"},
        None,
    )
    assert python_config(load.fn) == ({"file": HERE, "function": "load"}, None)
    _config, problem = python_config(lambda: None)
    assert problem is not None and "lambda" in problem


def test_repeated_calls_are_numbered_in_order_around_explicit_ids() -> None:
    """A step called again gets ``name_2``, ``name_3``... skipping ids taken explicitly;
    numbering goes on from the last number given (a chain of n calls is not n^2 probes)."""

    @kaon.workflow
    def flow() -> None:
        first = load()
        second = load(first)
        third = load.options(id="load_4")(second)
        fourth = load(third)
        load(fourth)

    ids = [step.id for step in flow.spec.graph.steps]
    assert ids == ["load", "load_2", "load_4", "load_3", "load_5"]


def test_a_sql_parameter_nothing_gives_is_a_definition_problem() -> None:
    @kaon.workflow
    def flow(k: int = 2) -> None:
        kaon.task("sql", {"query": "select $k + $j as s", "result": "scalar"}, inputs={"k": k})

    assert [m for _l, m in problems_of(flow)] == [
        "step 'sql': the query reads $j, which no params entry and no input gives"
    ]


def test_a_foreach_takes_min_success() -> None:
    @kaon.workflow
    def flow() -> None:
        with kaon.foreach([1, 2, 3], min_success=0.6, id="fe") as fe:
            load(n=fe.item)

    (fe,) = flow.spec.graph.steps
    assert isinstance(fe, ForeachSpec) and fe.min_success == 0.6

    @kaon.workflow
    def bad() -> None:
        with kaon.foreach([1, 2, 3], min_success=0, id="fe") as fe:
            load(n=fe.item)

    assert any("min_success must be a fraction in (0, 1]" in m for _l, m in problems_of(bad))
