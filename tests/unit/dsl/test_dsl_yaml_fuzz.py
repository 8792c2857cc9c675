"""Whatever a YAML file holds, the loader answers with a spec or a DefinitionError."""

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaon.dsl.yaml_loader import load_yaml_text
from kaon.errors import DefinitionError
from kaon.model.specs import WorkflowSpec

KEYS = [
    "name",
    "description",
    "params",
    "defaults",
    "timeout",
    "steps",
    "output",
    "id",
    "python",
    "shell",
    "type",
    "config",
    "workflow",
    "foreach",
    "as",
    "concurrency",
    "loop",
    "until",
    "max_iterations",
    "inputs",
    "needs",
    "when",
    "trigger_rule",
    "retry",
    "max_attempts",
    "backoff",
    "delay",
    "on_failure",
    "cache",
    "command",
    "env",
    "default",
    "x",
    "a",
]
TEXTS = [
    "",
    "a",
    "echo hi",
    "1h",
    "10x",
    "${{ steps.a }}",
    "${{",
    "steps.a.b > 1",
    "os.path:join",
    "missing.py:f",
    "child.yaml",
    "fail_fast",
    "all_done",
    "exponential",
    "item",
    "-1",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(TEXTS),
    st.text(max_size=8),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
    ),
    max_leaves=30,
)


def check(text: str) -> None:
    try:
        result = load_yaml_text(text, "/virtual/fuzz.yaml", base_dir="/nonexistent")
    except DefinitionError as exc:
        assert exc.problems
        assert all(p.location.file for p in exc.problems)
    else:
        assert isinstance(result, WorkflowSpec)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_structured_documents_never_crash(document: object) -> None:
    check(yaml.safe_dump(document))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "name: x\n",
                "steps:\n",
                "  - ",
                "id: a",
                "{",
                "}",
                "[",
                "]",
                ": ",
                "&a ",
                "*a ",
                "<<: ",
                "!tag ",
                "\t",
                "'",
                '"',
                "- ",
                "\n",
                "shell: echo",
                "#",
            ]
        ),
        max_size=25,
    ).map("".join)
)
def test_raw_text_never_crashes(text: str) -> None:
    check(text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_any_text_never_crashes(text: str) -> None:
    check(text)
