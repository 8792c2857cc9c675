"""The ``sql`` step type: run a query against DuckDB (the default) or any SQLAlchemy database.

Configuration::

    {"query": "select * from users where age >= $min_age",  # or "file": "select_users.sql"
     "url": "duckdb:///:memory:",        # the default; or any SQLAlchemy URL, which may
                                         # reference environment secrets as ${PG_PASSWORD}
     "params": {"min_age": 18},          # bound by the driver, never formatted into the text
     "result": "table",                  # table (default) | scalar | row | none
     "timezone": "Europe/Paris"}         # DuckDB's session time zone; UTC by default

``file`` is relative to the folder of the definition file (``base_dir`` in the config, which
the YAML loader may set; else the current directory at run time), and so is a relative
database file in a DuckDB or SQLite ``url`` (``duckdb:///data/p.duckdb``): both front ends
set ``base_dir`` for such a URL, resolved at run time after ``${NAME}`` is expanded.

**Parameters** are always bound by the database driver: write ``$name`` for DuckDB and
``:name`` for SQLAlchemy URLs. The values come from ``params`` and from the step's inputs
that are not tables (an input wins over a ``params`` entry of the same name); only the names
the query mentions are bound. A DuckDB script runs a statement at a time, each bound to the
names it mentions (DuckDB binds parameters only in the last statement of one call); a query
with no statement (empty, or only comments) is a ``SQLError``, or nothing for ``none``.

**Tables in, tables out.** With DuckDB, every input that is a ``pandas.DataFrame`` or a
``pyarrow.Table`` is registered under its input name, so ``select * from users`` reads the
``users`` input; a frame's named index levels are columns of its table. A ``table`` result
is a ``pandas.DataFrame`` (stored as Parquet; DECIMAL columns exact, as ``Decimal``
objects), ``scalar`` the first column of the single row, ``row`` the single row as a
``{column: value}`` dict and ``none`` nothing (for DDL and DML; SQLAlchemy transactions are
committed). ``scalar`` and ``row`` fail unless the query returns exactly one row. Decimals,
dates, times and UUIDs in ``scalar``/``row`` results become ints/floats and ISO strings so
that they stay JSON, inside lists, structs and maps too.

**Time zone.** A DuckDB session's ``TimeZone`` is ``UTC``, or the IANA zone the step's
``timezone`` names, never the worker's: a ``timestamptz`` cast to a date, ``now()::date`` and a
``timestamptz`` column of a ``table`` result come out the same on every machine. ``timezone``
on a SQLAlchemy URL is a definition error (that database has its own setting).

**Secrets.** ``${NAME}`` in ``url`` is expanded at run time from the environment (the
worker's, plus the task's ``env``), never at definition time; the expanded values and the
URL's password are replaced by ``***`` in every log line and error message.

**Failures.** A database error raises :class:`~kaon.errors.StepError` of type ``SQLError``
with the database's own message; a result of the wrong shape raises ``SQLResultError``. A
DuckDB query is interrupted when the attempt is cancelled or passes ``timeout_s``. A DuckDB
database file another process holds (DuckDB lets one process open it for writing: a sibling
foreach item, a DuckDB shell) is waited for, until the attempt is cancelled or times out.
"""

from __future__ import annotations

import datetime
import decimal
import os
import re
import threading
import time
import uuid
import warnings
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

from kaon.errors import Location, Problem, StepError
from kaon.model.specs import TaskSpec, WorkflowSpec
from kaon.steptypes._protocol import (
    AttemptWatch,
    Secrets,
    config_problems,
    env_references,
    resolve_file,
    template_message,
)
from kaon.steptypes._values import plain_value
from kaon.steptypes.base import StepType
from kaon.steptypes.context import StepContext
from kaon.steptypes.requirements import Requirement

RESULTS = ("table", "scalar", "row", "none")
_TEMPLATE_HINT = " and bind it in the query as ${name} (:{name} on a SQLAlchemy URL)"
DEFAULT_URL = "duckdb:///:memory:"
_KNOWN_KEYS = frozenset({"query", "file", "base_dir", "url", "params", "result", "timezone"})
DEFAULT_TIME_ZONE = "UTC"
_DUCKDB_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
# String literals (dollar-quoted ones too: `$$...$$`, `$tag$...$tag$`), quoted identifiers
# and comments: where a `$name` is not a parameter.
_SQL_NOISE = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/"
    r"|\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*|)\$.*?\$(?P=tag)\$",
    re.DOTALL,
)


# What SQLAlchemy's text() takes for a bind parameter (sqlalchemy.sql.elements.TextClause).
_SQLALCHEMY_BIND = re.compile(r"(?<![:\w\x5c]):(\w+)(?!:)")


def duckdb_parameter_names(query: str) -> list[str]:
    """The ``$name`` parameters a DuckDB query mentions (outside literals and comments)."""
    return list(dict.fromkeys(_DUCKDB_PARAM.findall(_SQL_NOISE.sub(" ", query))))


def _is_time_zone(name: object) -> bool:
    import zoneinfo

    if not isinstance(name, str) or not name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _time_zone_problems(config: Mapping[str, Any], location: Location) -> list[Problem]:
    """``timezone``: an IANA zone (a non-string is the common check's problem), and only for
    DuckDB, whose session it sets."""
    zone = config.get("timezone")
    if zone is None or not isinstance(zone, str):
        return []
    if not _is_time_zone(zone):
        return [Problem(f"'timezone' {zone!r} is not an IANA time zone", location)]
    url = config.get("url") or DEFAULT_URL
    if isinstance(url, str) and not url.startswith("duckdb"):
        return [
            Problem(
                "'timezone' sets a DuckDB session's time zone; set it in the database for "
                f"{url.split(':', 1)[0]}",
                location,
            )
        ]
    return []


def unbound_parameter_problems(spec: WorkflowSpec) -> list[Problem]:
    """Every SQL step of ``spec`` (nested ones too) whose DuckDB query reads a ``$name``
    that nothing gives (see :func:`unbound_parameter_problem`): both front ends check it."""
    found = []
    for path, step in spec.graph.walk():
        if isinstance(step, TaskSpec) and step.step_type == SqlStepType.name:
            problem = unbound_parameter_problem(path, step.config, step.inputs, step.location)
            if problem is not None:
                found.append(problem)
    return found


def unbound_parameter_problem(
    step: str, config: Mapping[str, Any], inputs: Collection[str], location: Location
) -> Problem | None:
    """A DuckDB query's ``$name`` that neither ``params`` nor an input of the step gives
    (the query would fail at run time: no value for a prepared statement's parameter), as
    one problem at the step's ``inputs``; None when every one is given, or the query cannot
    be read here (the step type's own check names that), or the URL is not DuckDB's."""
    url = config.get("url") or DEFAULT_URL
    if not isinstance(url, str) or not url.startswith("duckdb"):
        return None
    try:
        query = SqlStepType._query(config)
    except (StepError, KeyError, ValueError, TypeError):  # the step type's check says why
        return None
    params = config.get("params")
    given = set(inputs) | (set(params) if isinstance(params, Mapping) else set())
    missing = [name for name in duckdb_parameter_names(query) if name not in given]
    if not missing:
        return None
    names = ", ".join(f"${name}" for name in missing)
    return Problem(
        f"step {step!r}: the query reads {names}, which no params entry and no input gives",
        location.with_field("inputs"),
    )


def _file_template_problems(path: str, location: Location) -> list[Problem]:
    """A ``${{ ... }}`` in a SQL file: its text is the query, never substituted."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError):
        return []  # run() says why it cannot read it
    for number, line in enumerate(text.splitlines(), 1):
        if "${{" in line:
            message = template_message(line, _TEMPLATE_HINT)
            return [Problem(f"{path} line {number}: {message}", location)]
    return []


def _is_table(value: Any) -> bool:
    kind = type(value)
    return (kind.__module__.startswith("pandas") and kind.__name__ == "DataFrame") or (
        kind.__module__.startswith("pyarrow") and kind.__name__ == "Table"
    )


def _code_folder(config: Mapping[str, Any]) -> str | None:
    """The folder of the step's SQL file (else its ``base_dir``), where a DuckDB query's
    relative paths are also looked for (``read_json_auto('cfg.json')``): the files pushed
    with the workflow, as a shell step, a notebook or an R script runs in that folder.
    None for an inline query of no known folder."""
    if config.get("file"):
        return os.path.dirname(resolve_file(config, "file"))
    base = config.get("base_dir")
    return base if isinstance(base, str) and os.path.isabs(base) else None


def _check_no_table_parameter(
    statements: Sequence[Any], tables: Mapping[str, Any], values: Mapping[str, Any]
) -> None:
    """Raise a ``SQLError`` for a ``$name`` that names a table input (validation cannot
    tell a table input from a value), before any statement runs."""
    for statement in statements:
        for name in sorted(statement.named_parameters):
            if name in tables and name not in values:
                raise StepError(
                    "SQLError",
                    f"${name} names a table input (a {type(tables[name]).__name__}), not a "
                    f"value: read it as a table (select ... from {name}), or pass a value "
                    f"under another name",
                )


def _check_no_list_of_tables(query: str, values: Mapping[str, Any]) -> None:
    """Raise a ``SQLError`` for an input that is a list of tables (a foreach's output, one
    DataFrame per item) when the query names it: DuckDB would say no such table exists."""
    words = None
    for name, value in values.items():
        if not (isinstance(value, list | tuple) and value and all(map(_is_table, value))):
            continue
        words = words if words is not None else _SQL_NOISE.sub(" ", query)
        if re.search(rf"(?<![\w$]){re.escape(name)}(?!\w)", words) or f'"{name}"' in query:
            raise StepError(
                "SQLError",
                f"input {name!r} is a list of {len(value)} tables (a foreach's output?), not a "
                "table: only a DataFrame or a pyarrow Table input is one; concatenate the "
                "items in a Python step first (pandas.concat)",
            )


def _register(connection: Any, name: str, table: Any, secrets: Secrets) -> None:
    """Register input ``name`` as a DuckDB table; a ``SQLError`` naming the input (and the
    columns of the type DuckDB names) when DuckDB cannot read it."""
    import duckdb

    try:
        connection.register(name, table)
    except duckdb.Error as exc:
        message = str(exc)
        if len(getattr(table, "columns", ())) == 0:
            message = f"a table with no columns cannot be queried ({message})"
        dtypes = getattr(table, "dtypes", None)  # a pandas frame's (DuckDB names them)
        items = list(dtypes.items()) if dtypes is not None else []
        named = [str(c) for c, dtype in items if f"'{dtype}'" in message]
        where = f" (column{'s' if len(named) > 1 else ''} {', '.join(map(repr, named))})"
        raise StepError(
            "SQLError", secrets.redact(f"input {name!r}{where if named else ''}: {message}")
        ) from None


def _with_index_columns(table: Any) -> Any:
    """A pandas frame whose named index levels (``groupby(...).sum()``'s keys, a
    ``set_index``) are columns, as Parquet keeps them: DuckDB reads a frame's columns only.
    A level named as an existing column, and unnamed levels, stay out; a frame without
    named levels (and a pyarrow table) is returned as it is, not copied."""
    index = getattr(table, "index", None)  # a pyarrow table has none
    if index is None:
        return table
    levels = [name for name in index.names if name is not None and name not in table.columns]
    return table.reset_index(level=levels) if levels else table


def _duckdb_path(url: str, base_dir: str | None = None) -> str | None:
    """The database path of a DuckDB URL (``:memory:`` for in-memory), None for other URLs;
    a relative path resolved against ``base_dir`` (see :func:`_database_file`)."""
    if url in ("duckdb", "duckdb:", "duckdb://", "duckdb:///"):
        return ":memory:"
    if not url.startswith("duckdb:///"):
        return None
    path = url[len("duckdb:///") :].split("?", 1)[0]
    return _database_file(path, base_dir) if path else ":memory:"


def _database_file(path: str, base_dir: str | None) -> str:
    """A file database's ``path`` from a URL, a relative one made absolute against
    ``base_dir`` (the definition file's folder, which the front ends set for a file URL;
    else the current folder, as before). ``:memory:`` and names with a scheme (``md:db``,
    ``file:x?mode=ro``) are the database's own and kept."""
    if not base_dir or path.startswith(":") or os.path.isabs(path):
        return path
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", path):
        return path
    return os.path.join(base_dir, path)


def json_scalar(value: Any) -> Any:
    """A database value made JSON friendly: Decimal to int/float, dates/UUIDs to strings,
    all the way into lists, arrays (tuples), structs and maps (dicts, whose keys become
    strings, as JSON's are)."""
    if isinstance(value, list | tuple):
        return [json_scalar(item) for item in value]
    if isinstance(value, dict):
        return {
            key if isinstance(key, str) else str(json_scalar(key)): json_scalar(item)
            for key, item in value.items()
        }
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value


def _shape(result: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Any:
    """A ``scalar`` or ``row`` result from the fetched rows."""
    if len(rows) != 1:
        raise StepError(
            "SQLResultError",
            f"result '{result}' needs exactly one row, the query returned "
            f"{len(rows)}{' or more' if len(rows) > 1 else ''}",
        )
    if result == "scalar":
        if not columns:
            raise StepError("SQLResultError", "result 'scalar' needs a column, the row has none")
        return json_scalar(rows[0][0])
    names = [str(name) for name in columns]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise StepError(
            "SQLResultError",
            f"result 'row' needs distinct column names, the query returns "
            f"{', '.join(map(repr, twice))} more than once (give each its own alias)",
        )
    return {name: json_scalar(value) for name, value in zip(names, rows[0], strict=False)}


class SqlStepType(StepType):
    """Runs one SQL query (or script) and returns its result as a table, a row or a scalar."""

    name: ClassVar[str] = "sql"

    def requirements(self, config: Mapping[str, Any]) -> tuple[Requirement, ...]:
        """DuckDB for a ``duckdb:`` URL (the default), psycopg for a PostgreSQL one, and pandas
        for a ``table`` result."""
        url = str(config.get("url") or DEFAULT_URL)
        needed: list[Requirement] = []
        if url.startswith("duckdb"):
            needed.append(Requirement("duckdb", "ml"))
        elif url.startswith("postgresql+psycopg"):
            needed.append(Requirement("psycopg", "postgres"))
        if config.get("result", "table") == "table":
            needed.append(Requirement("pandas", "ml"))
        return tuple(needed)

    def validate(self, config: Mapping[str, Any], location: Location) -> list[Problem]:
        """Check: exactly one of ``query``/``file`` (a readable file), ``result`` one of
        table/scalar/row/none, ``params`` a mapping, ``url`` a string whose ``${NAME}``
        references are well formed."""
        location = location.with_field("config")  # problems point at config.<key>
        problems = config_problems(
            config,
            location,
            _KNOWN_KEYS,
            strings=("query", "file", "base_dir", "url", "timezone"),
            mappings=("params",),
            one_of=("query", "file"),
            template_hint=_TEMPLATE_HINT,
        )
        result = config.get("result", "table")
        if result not in RESULTS:
            problems.append(
                Problem(
                    f"'result' must be one of {', '.join(RESULTS)}, got {result!r}",
                    location.with_field("result"),
                )
            )
        problems.extend(_time_zone_problems(config, location.with_field("timezone")))
        url = config.get("url")
        if isinstance(url, str) and url.count("${") != len(env_references(url)):
            problems.append(
                Problem("'url' has a malformed ${NAME} reference", location.with_field("url"))
            )
        if isinstance(config.get("file"), str) and config.get("query") is None:
            path = resolve_file(config, "file", location)
            if not os.path.isfile(path):
                problems.append(
                    Problem(f"SQL file {path} does not exist", location.with_field("file"))
                )
            else:
                problems.extend(_file_template_problems(path, location.with_field("file")))
        return problems

    def run(self, ctx: StepContext, config: Mapping[str, Any], inputs: dict[str, Any]) -> Any:
        """Run the query; return its result shaped by ``result``.

        Raises :class:`~kaon.errors.StepError`: ``SQLError`` (the database's message, secrets
        redacted), ``SQLResultError``, ``ConfigError`` (a missing ``${NAME}`` or SQL file),
        ``Timeout`` or ``Cancelled``.
        """
        env = {**os.environ, **(ctx.extra.get("env") or {})}
        secrets = Secrets(env)
        try:
            url = secrets.expand(str(config.get("url") or DEFAULT_URL))
        except KeyError as exc:
            raise StepError(
                "ConfigError", f"'url' references ${{{exc.args[0]}}}, which is not set"
            ) from None
        query = self._query(config)
        result = str(config.get("result", "table"))
        tables = {name: value for name, value in inputs.items() if _is_table(value)}
        values = dict(config.get("params") or {})
        values.update({k: plain_value(v) for k, v in inputs.items() if k not in tables})
        zone = config.get("timezone") or DEFAULT_TIME_ZONE
        if not _is_time_zone(zone):
            raise StepError("ConfigError", f"'timezone' {zone!r} is not an IANA time zone")
        started = time.monotonic()
        base_dir = config.get("base_dir")
        path = _duckdb_path(url, str(base_dir) if base_dir else None)
        try:
            if path is not None:
                ctx.log(f"sql: running the query on DuckDB ({path})")
                folder = _code_folder(config)
                value = self._run_duckdb(
                    ctx, path, query, values, tables, result, secrets, folder, str(zone)
                )
            else:
                value = self._run_sqlalchemy(
                    ctx, url, query, values, tables, result, secrets, config.get("base_dir")
                )
        except StepError as exc:
            if exc.error_type != "SQLError" or config.get("query") is not None:
                raise
            # The database's LINE n counts the file's lines: name the file it counts in.
            where = resolve_file(config, "file")
            raise StepError("SQLError", f"{where}: {exc.message}", exc.traceback) from None
        ctx.log(f"sql: done in {time.monotonic() - started:.3f} s{_describe(value, result)}")
        return value

    @staticmethod
    def _query(config: Mapping[str, Any]) -> str:
        if config.get("query") is not None:
            return str(config["query"])
        path = resolve_file(config, "file")
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except OSError as exc:
            raise StepError("ConfigError", f"cannot read SQL file {path}: {exc}") from None

    @staticmethod
    def _run_duckdb(
        ctx: StepContext,
        path: str,
        query: str,
        values: Mapping[str, Any],
        tables: Mapping[str, Any],
        result: str,
        secrets: Secrets,
        folder: str | None = None,
        zone: str = DEFAULT_TIME_ZONE,
    ) -> Any:
        import duckdb

        opened: list[Any] = []  # the connection, once DuckDB gave it
        stopped = threading.Event()

        def stop() -> None:
            stopped.set()
            if opened:
                opened[0].interrupt()

        interrupter = AttemptWatch(ctx, stop, name="kaon-sql-watch", what="query")
        try:
            with interrupter:
                connection = _connect_duckdb(ctx, path, stopped)
                opened.append(connection)
                # No progress bar: DuckDB writes it straight to the terminal, past the log.
                connection.execute("SET enable_progress_bar = false")
                # The step's zone, not the worker's: results the same on every machine.
                connection.execute("SET TimeZone = '{}'".format(zone.replace("'", "''")))
                if folder is not None and "," not in folder:  # after the working directory:
                    # the files beside the SQL file (a comma would split DuckDB's list)
                    quoted = folder.replace("'", "''")
                    connection.execute(f"SET file_search_path = '{quoted}'")
                for name, table in tables.items():
                    _register(connection, name, _with_index_columns(table), secrets)
                # One statement at a time, each bound to its own parameters: DuckDB binds
                # parameters only in the last statement of one execute.
                statements = connection.extract_statements(query)
                if not statements:
                    if result == "none":
                        return None
                    raise StepError("SQLError", "the query has no SQL statement (only comments)")
                _check_no_table_parameter(statements, tables, values)
                _check_no_list_of_tables(query, values)
                for statement in statements:
                    wanted = statement.named_parameters
                    bound = {name: values[name] for name in wanted if name in values}
                    cursor = connection.execute(statement, bound or None)
                if result == "table":
                    return _duckdb_frame(connection, cursor)
                if result == "none":
                    return None
                columns = [d[0] for d in cursor.description or ()]
                return _shape(result, columns, cursor.fetchmany(2) if columns else [])
        except duckdb.Error as exc:  # not interrupted by the watch (its error is a StepError)
            raise StepError("SQLError", secrets.redact(str(exc))) from None
        finally:
            if opened:
                opened[0].close()

    @staticmethod
    def _run_sqlalchemy(
        ctx: StepContext,
        url: str,
        query: str,
        values: Mapping[str, Any],
        tables: Mapping[str, Any],
        result: str,
        secrets: Secrets,
        base_dir: str | None = None,
    ) -> Any:
        import sqlalchemy as sa

        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise StepError("ConfigError", secrets.redact(f"bad database URL: {exc}")) from None
        if parsed.drivername.startswith("sqlite") and parsed.database:
            parsed = parsed.set(database=_database_file(parsed.database, base_dir))
        secrets.hide(parsed.password if isinstance(parsed.password, str) else None)
        shown = secrets.redact(parsed.render_as_string(hide_password=True))
        ctx.log(f"sql: running the query on {shown}")
        if tables:
            names = ", ".join(sorted(tables))
            raise StepError(
                "ConfigError",
                f"table inputs ({names}) can only be queried with DuckDB, not {parsed.drivername}",
            )
        scripts = split_statements(query, sqlite=parsed.drivername.startswith("sqlite"))
        if not scripts:
            if result == "none":
                return None
            raise StepError("SQLError", "the query has no SQL statement (only comments)")
        engine = None
        number = 0
        try:
            engine = sa.create_engine(parsed, poolclass=sa.pool.NullPool)
            if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
                _transactional_ddl(engine)
            # One statement at a time (drivers take one per call), each bound to the names it
            # mentions, in one transaction: a failing statement undoes the script's others.
            with engine.begin() as connection:
                for text in scripts:
                    number += 1  # named in the error if this one fails
                    statement = sa.text(_colons_in_text_escaped(text))
                    wanted = statement.compile().params
                    bound = {name: values[name] for name in wanted if name in values}
                    cursor = connection.execute(statement, bound)
                if result == "none":
                    return None
                columns = list(cursor.keys()) if cursor.returns_rows else []
                if result == "table":
                    return _frame(columns, cursor.fetchall() if columns else [])
                return _shape(result, columns, cursor.fetchmany(2) if columns else [])
        except sa.exc.SQLAlchemyError as exc:
            which = f"statement {number} of {len(scripts)}: " if len(scripts) > 1 else ""
            raise StepError("SQLError", secrets.redact(which + _driver_message(exc))) from None
        finally:
            if engine is not None:
                engine.dispose()


def _connect_duckdb(ctx: StepContext, path: str, stopped: threading.Event) -> Any:
    """A connection to the DuckDB database at ``path``, waiting while another process holds
    its file (DuckDB lets one process at a time open a database file for writing: a sibling
    foreach item on the same file, a DuckDB shell left open) until ``stopped`` is set by the
    attempt's watch (then DuckDB's error is raised: the watch turns it into its own)."""
    import duckdb

    delay = 0.02
    while True:
        try:
            return duckdb.connect(path)
        except duckdb.IOException as exc:
            if "Could not set lock" not in str(exc):
                raise
            if delay == 0.02:
                ctx.log(f"sql: waiting for {path}, which another process holds")
            if stopped.wait(delay):
                raise
            delay = min(delay * 2, 0.5)


def _transactional_ddl(engine: Any) -> None:
    """Make ``engine``'s SQLite transactions hold DDL too: Python's ``sqlite3`` begins one
    only before DML, so a script's ``create table`` stayed after a later statement failed
    (SQLAlchemy's recipe: the driver's own transactions off, ``BEGIN`` emitted by us)."""
    import sqlalchemy as sa

    @sa.event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")


def split_statements(query: str, *, sqlite: bool = False) -> list[str]:
    """The statements of a script, split at each ``;`` outside string literals, quoted
    identifiers, comments and dollar quotes (a PostgreSQL function body), without the ones that
    are only comments; on SQLite a trigger's ``BEGIN ... END`` stays one statement (pieces are
    joined until :func:`sqlite3.complete_statement` says the statement is whole)."""
    import sqlite3

    masked = _SQL_NOISE.sub(lambda found: " " * len(found.group(0)), query)
    pieces, start = [], 0
    for at, char in enumerate(masked):
        if char == ";":
            pieces.append((query[start : at + 1], masked[start : at + 1]))
            start = at + 1
    pieces.append((query[start:], masked[start:]))
    if sqlite:
        joined: list[tuple[str, str]] = []
        text = bare = ""
        for piece, piece_bare in pieces:
            text, bare = text + piece, bare + piece_bare
            if sqlite3.complete_statement(bare):
                joined.append((text, bare))
                text = bare = ""
        if text:
            joined.append((text, bare))
        pieces = joined
    return [text.strip() for text, bare in pieces if bare.replace(";", " ").strip()]


def _colons_in_text_escaped(query: str) -> str:
    """``query`` with each ``:name`` inside a string literal, quoted identifier or comment
    escaped (``\\:name``) so that SQLAlchemy's ``text()``, which takes every ``:name`` for
    a parameter (its pattern is ``_SQLALCHEMY_BIND``), leaves it as the text it is."""
    return _SQL_NOISE.sub(lambda found: _SQLALCHEMY_BIND.sub(r"\\:\1", found.group(0)), query)


def _driver_message(exc: Exception) -> str:
    """The driver's own message (without SQLAlchemy's statement dump and help link)."""
    original = getattr(exc, "orig", None)
    if original is not None:
        return f"{type(original).__name__}: {original}".strip()
    return str(exc).split("\n(Background on this error", 1)[0].strip()


def _frame(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame.from_records([tuple(row) for row in rows], columns=list(columns))


def _duckdb_frame(connection: Any, cursor: Any) -> Any:
    """The DuckDB result as a pandas frame, its DECIMAL columns exact (``decimal.Decimal``
    objects, stored as Parquet decimals): DuckDB's ``df()`` makes them float64, rounding a
    money column. The other columns convert as ``df()`` does; the rows go through Arrow
    only when there is a DECIMAL column."""
    description = cursor.description
    if not description:
        return _empty_frame()
    decimals = [i for i, column in enumerate(description) if _is_decimal(column[1])]
    if not decimals:
        return cursor.df()
    import pandas as pd
    import pyarrow as pa

    with warnings.catch_warnings():  # DuckDB's note that Arrow from a cursor copies the rows
        warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
        table = cursor.to_arrow_table()
    # DuckDB reads an ENUM back from Arrow as VARCHAR: Arrow converts those (categories).
    enums = [i for i in range(table.num_columns) if pa.types.is_dictionary(table.column(i).type)]
    others = [i for i in range(table.num_columns) if i not in decimals and i not in enums]
    if others:
        frame = connection.from_arrow(table.select(others)).df()
    else:
        frame = pd.DataFrame(index=pd.RangeIndex(table.num_rows))
    for i in sorted(decimals + enums):
        column = table.column(i)
        if i in decimals:
            values = pd.Series(column.to_pylist(), dtype=object)
        else:  # ordered, as DuckDB makes an ENUM's categories
            values = column.to_pandas().cat.as_ordered()
        frame.insert(i, str(description[i][0]), values, allow_duplicates=True)
    return frame


def _is_decimal(kind: Any) -> bool:
    return getattr(kind, "id", None) == "decimal" or str(kind).startswith("DECIMAL(")


def _empty_frame() -> Any:
    import pandas as pd

    return pd.DataFrame()


def _describe(value: Any, result: str) -> str:
    if result == "table" and hasattr(value, "shape"):
        return f", {value.shape[0]} rows x {value.shape[1]} columns"
    return ""
