"""The ``spark`` step type: call a PySpark function with a SparkSession and the step's inputs.

Configuration::

    {"function": "my_package.jobs:train_global",    # or "file": "jobs.py", "function": "train"
     "master": "local[4]",                          # default: local[<cores>] (local[*])
     "resources": {"cores": 4, "memory": "2g"},     # driver cores and memory
     "conf": {"spark.sql.shuffle.partitions": "8"}, # any Spark configuration, wins over ours
     "spark_inputs": ["users"],                     # pandas inputs to hand over as Spark
                                                    # DataFrames (or "all"); default none
     "log_level": "WARN"}                           # Spark's log level in the step log

``file`` is relative to the definition file's folder (``base_dir``), and loaded like a
``python`` step's file.

**The call.** The function is called with the inputs as keyword arguments, plus ``spark=`` (the
:class:`pyspark.sql.SparkSession`) when it has a parameter of that name (or ``**kwargs``).
Inputs stay what they are (a ``pandas.DataFrame`` stays pandas) unless they are listed in
``spark_inputs`` or the parameter is annotated as ``pyspark.sql.DataFrame``: those are
converted with ``spark.createDataFrame`` (Arrow-accelerated). A Spark DataFrame returned (or a
mapping of them) is converted with ``toPandas()``, so that it flows on as a Parquet artifact
like any other table. Keep results that size small, or write them to storage yourself and
return the path.

**One session per process.** Starting the JVM takes 5-10 s, so the session is created on the
first Spark step of a worker process and reused; it is stopped when the process exits. A step
asking for a different master or configuration restarts the session (about a second: the JVM
stays up, so driver-JVM settings such as ``spark.driver.memory`` and
``spark.driver.extraJavaOptions`` keep the values of the process's first Spark step).
Spark steps in one process run one at a time (a lock), which is what a process worker does
anyway.

**Defaults for local mode.** ``spark.ui.enabled=false``, driver bound to 127.0.0.1,
``spark.sql.shuffle.partitions`` = 2 x cores, Arrow enabled, and the Python workers use this
interpreter (``spark.pyspark.python``). ``resources.memory`` becomes ``spark.driver.memory``.

**Logs.** Spark's log4j2 output is written to a file per session (root level ``log_level``)
and the lines written while the step runs are copied to the step's log; print() output of the
function goes to the step log as for Python steps. Two Spark steps never share the session
at the same time, so their lines do not mix.

**Failures.** A Spark or Py4J exception raises :class:`~kaon.errors.StepError` of type
``SparkError`` whose message is the first meaningful line of the Java or Python error (the
full text is its traceback); other exceptions from the function propagate as for a Python
step. Cancelling the attempt or passing ``timeout_s`` cancels the step's Spark jobs.

**Against a real cluster.** Nothing in the function changes:

* set ``master`` to the cluster (``spark://host:7077``, ``yarn``, ``k8s://https://...``) and
  size the job with ``conf`` (``spark.executor.instances``, ``spark.executor.memory``,
  ``spark.executor.cores``; ``spark.kubernetes.container.image`` on Kubernetes). The Kaon
  worker is then the Spark *driver* (client mode): it needs network access to the cluster,
  and the executors need the function's module (ship it with ``spark.submit.pyFiles`` or bake
  it into the executor image). Use ``spark.jars.packages`` for connectors.
* or keep the Spark driver off the Kaon worker altogether: run ``spark-submit --deploy-mode
  cluster job.py`` from a ``shell`` step, and have ``job.py`` write its results to storage
  whose path the step reports with ``::kaon::output``.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import inspect
import json
import math
import os
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

from kaon.errors import Location, Problem, StepError
from kaon.steptypes._protocol import (
    AttemptWatch,
    config_problems,
    parse_memory,
    resolve_file,
    resource_cores,
    resources_problems,
)
from kaon.steptypes.base import CodeFingerprint, StepType
from kaon.steptypes.context import StepContext
from kaon.steptypes.requirements import Requirement
from kaon.steptypes.scratch import scratch_folder

LOG_LEVELS = ("ALL", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF")
MAX_MESSAGE_CHARS = 500
_KNOWN_KEYS = frozenset(
    {"function", "file", "base_dir", "master", "resources", "conf", "spark_inputs", "log_level"}
)
_TAIL_S = 0.2
_LOG4J2 = """\
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = kaon
appender.kaon.type = File
appender.kaon.name = kaon
appender.kaon.fileName = {path}
appender.kaon.layout.type = PatternLayout
appender.kaon.layout.pattern = %d{{HH:mm:ss.SSS}} %p %c{{1}}: %m%n%ex
"""


class _Session:
    """This process's SparkSession, the settings it was built with and its log file."""

    lock = threading.RLock()
    spark: Any = None
    key: tuple[str, tuple[tuple[str, str], ...]] | None = None
    log_path: str | None = None
    workdir: str | None = None


def _reset_after_fork() -> None:
    # A forked child must not use the parent's JVM gateway; it starts its own session.
    _Session.lock = threading.RLock()
    _Session.spark = _Session.key = _Session.log_path = _Session.workdir = None


os.register_at_fork(after_in_child=_reset_after_fork)


@contextmanager
def _quiet_pandas_warning() -> Iterator[None]:
    """PySpark warns about (and uses deprecated parts of) pandas 3 on every conversion; those
    warnings are about PySpark, not the step, so keep them out of it."""
    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=r"pyspark(\.|$)")
        yield


def session_settings(config: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """``(master, Spark configuration)`` a step's config asks for (see the module docstring)."""
    resources = config.get("resources") or {}
    cores = resource_cores(resources)
    master = (
        config.get("master")
        or os.environ.get("KAON_SPARK_MASTER")
        or (f"local[{math.ceil(cores)}]" if cores else "local[*]")
    )
    conf: dict[str, str] = {
        "spark.app.name": "kaon",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
    }
    if _on_loopback(str(master)):  # the driver must be reachable where the master is
        conf.update({"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"})
    if str(master).startswith("local"):
        partitions = 2 * math.ceil(cores) if cores else 2 * (os.cpu_count() or 1)
        conf.update(
            {
                "spark.driver.host": "127.0.0.1",
                "spark.driver.bindAddress": "127.0.0.1",
                "spark.sql.shuffle.partitions": str(partitions),
            }
        )
    memory = parse_memory(resources.get("memory")) if "memory" in resources else None
    if memory is not None:
        conf["spark.driver.memory"] = f"{memory}m"
    conf.update({str(k): str(v) for k, v in (config.get("conf") or {}).items()})
    return str(master), conf


def _on_loopback(master: str) -> bool:
    """Whether ``master`` is a standalone master on this host's loopback."""
    host = master.removeprefix("spark://").split(":")[0]
    return master.startswith("spark://") and host in ("127.0.0.1", "localhost")


def step_resources(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a Spark step's driver needs of its host (see :meth:`SparkStepType.resources`)."""
    resources = config.get("resources") or {}
    master = str(config.get("master") or os.environ.get("KAON_SPARK_MASTER") or "local")
    needs: dict[str, Any] = {}
    cores = resource_cores(resources)
    if master.startswith("local"):
        inside = master.removeprefix("local").strip("[]").split(",")[0]
        if inside.isdigit():
            needs["cpus"] = float(inside)
        elif cores:
            needs["cpus"] = float(math.ceil(cores))
    memory = parse_memory(resources.get("memory")) if "memory" in resources else None
    if memory is not None:
        needs["memory"] = memory * 1024 * 1024
    return needs


def _stop_session() -> None:
    with _Session.lock:
        spark, _Session.spark, _Session.key = _Session.spark, None, None
    if spark is not None:
        spark.stop()


atexit.register(_stop_session)


def get_session(ctx: StepContext, master: str, conf: Mapping[str, str], level: str) -> Any:
    """This process's SparkSession built with ``master`` and ``conf`` (restarting a session
    built otherwise). Call with ``_Session.lock`` held."""
    key = (master, tuple(sorted(conf.items())))
    if _Session.spark is not None and _Session.key == key:
        _Session.spark.sparkContext.setLogLevel(level)
        return _Session.spark
    if _Session.spark is not None:
        ctx.log("spark: the step asks for other settings; restarting the Spark session")
        _stop_session()
    from pyspark.sql import SparkSession

    workdir = _Session.workdir or scratch_folder("spark-")
    _Session.workdir = workdir
    log_path = os.path.join(workdir, f"spark-{uuid.uuid4().hex[:8]}.log")
    properties = os.path.join(workdir, "log4j2.properties")
    with open(properties, "w", encoding="utf-8") as handle:
        handle.write(_LOG4J2.format(level=level, path=log_path))
    # The driver's temporary folders (its local directory's blockmgr-*, spark-*, artifacts-*)
    # go to java.io.tmpdir, /tmp by default, where they stay when the worker ends by killing
    # the JVM: keep them in the session's scratch folder, removed with it.
    java_tmp = os.path.join(workdir, "tmp")
    os.makedirs(java_tmp, exist_ok=True)
    java_options = f"-Dlog4j.configurationFile=file:{properties} -Djava.io.tmpdir={java_tmp}"
    if conf.get("spark.driver.extraJavaOptions"):
        java_options += " " + conf["spark.driver.extraJavaOptions"]
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # PySpark picks the Python workers' interpreter from the environment, not the conf.
    os.environ.setdefault("PYSPARK_PYTHON", conf.get("spark.pyspark.python", sys.executable))
    builder = SparkSession.builder.master(master)
    # Spark SQL's warehouse defaults to ./spark-warehouse of whatever folder the engine runs
    # in: keep it in the session's scratch folder unless the step names one.
    warehouse = {"spark.sql.warehouse.dir": os.path.join(workdir, "warehouse")}
    settings = {**warehouse, **conf, "spark.driver.extraJavaOptions": java_options}
    for name, value in settings.items():
        builder = builder.config(name, value)
    ctx.log(f"spark: starting a Spark session (master {master})")
    started = time.monotonic()
    with _quiet_pandas_warning():
        spark = builder.getOrCreate()
    ctx.log(f"spark: session ready in {time.monotonic() - started:.1f} s")
    _Session.spark, _Session.key, _Session.log_path = spark, key, log_path
    return spark


class _LogTail:
    """Copies the lines appended to Spark's log file to the step log while the step runs."""

    def __init__(self, ctx: StepContext, path: str | None) -> None:
        self.ctx = ctx
        self.path = path
        self.offset = os.path.getsize(path) if path and os.path.exists(path) else 0
        self.partial = b""
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._follow, name="kaon-spark-log", daemon=True)

    def __enter__(self) -> _LogTail:
        if self.path:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join()
        self._read()
        if self.partial:
            self.ctx.log(self.partial.decode("utf-8", "replace"), "log")

    def _follow(self) -> None:
        while not self.done.wait(_TAIL_S):
            self._read()

    def _read(self) -> None:
        if not self.path or not os.path.exists(self.path):
            return
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        for line in lines:
            self.ctx.log(line.decode("utf-8", "replace").rstrip("\r"), "log")


def first_meaningful_line(text: str) -> str:
    """The line of a Spark/Py4J/Python error text that says what went wrong.

    A Python traceback gives its exception line; a Py4J error its ``: java.Exception: ...``
    line; anything else its first non-empty line that is not Py4J's "An error occurred".
    """
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if "Traceback (most recent call last)" in line:
            for candidate in lines[index + 1 :]:
                if not candidate[:1].isspace() and not candidate.startswith("Traceback"):
                    return candidate.strip()[:MAX_MESSAGE_CHARS]
    for line in lines:
        if line.startswith(": "):
            return line[2:].strip()[:MAX_MESSAGE_CHARS]
    for line in lines:
        if not line.startswith("An error occurred while calling"):
            return line.strip()[:MAX_MESSAGE_CHARS]
    return text.strip()[:MAX_MESSAGE_CHARS]


def _is_spark_error(exc: BaseException) -> bool:
    module = type(exc).__module__
    return module.startswith(("pyspark.errors", "py4j"))


def _wants_spark_frame(fn: Callable[..., Any], name: str) -> bool:
    try:
        annotation = inspect.signature(fn, eval_str=True).parameters[name].annotation
    except Exception:  # unresolvable annotations: no conversion
        return False
    module = getattr(annotation, "__module__", "")
    return getattr(annotation, "__name__", "") == "DataFrame" and module.startswith("pyspark")


def _is_pandas_frame(value: Any) -> bool:
    kind = type(value)
    return kind.__module__.startswith("pandas") and kind.__name__ == "DataFrame"


def _to_pandas(value: Any) -> Any:
    module = type(value).__module__
    if module.startswith("pyspark.sql") and type(value).__name__ == "DataFrame":
        return value.toPandas()
    return value


class SparkStepType(StepType):
    """Runs a PySpark function in this worker's SparkSession (local mode by default)."""

    name: ClassVar[str] = "spark"
    fingerprint_runs_code: ClassVar[bool] = True  # imports the job's module

    def requirements(self, config: Mapping[str, Any]) -> tuple[Requirement, ...]:
        """PySpark."""
        return (Requirement("pyspark", "spark"),)

    def resources(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The driver's: ``local[N]`` (or ``resources.cores`` in local mode) takes N CPUs, a
        cluster's driver one; ``resources.memory`` is the driver's memory."""
        return step_resources(config)

    def validate(self, config: Mapping[str, Any], location: Location) -> list[Problem]:
        """Check the shape (``function``; ``file`` existing; ``resources``; ``conf`` a mapping;
        ``spark_inputs`` a list of names or "all"; ``log_level`` a log4j level)."""
        location = location.with_field("config")  # problems point at config.<key>
        problems = config_problems(
            config,
            location,
            _KNOWN_KEYS,
            strings=("function", "file", "base_dir", "master"),
            mappings=("conf",),
        )
        problems += resources_problems(config, location)
        function = config.get("function")
        if function is None:
            problems.append(Problem("'function' is required", location.with_field("function")))
        elif isinstance(function, str) and config.get("file") is None and ":" not in function:
            problems.append(
                Problem(
                    f"'function' must look like 'module:qualname', got {function!r}",
                    location.with_field("function"),
                )
            )
        if isinstance(config.get("file"), str):
            path = resolve_file(config, "file", location)
            if not os.path.isfile(path):
                problems.append(
                    Problem(f"Python file {path} does not exist", location.with_field("file"))
                )
        spark_inputs = config.get("spark_inputs", [])
        if spark_inputs != "all" and not (
            isinstance(spark_inputs, list) and all(isinstance(n, str) for n in spark_inputs)
        ):
            problems.append(
                Problem(
                    "'spark_inputs' must be a list of input names or \"all\"",
                    location.with_field("spark_inputs"),
                )
            )
        level = config.get("log_level", "WARN")
        if not isinstance(level, str) or level.upper() not in LOG_LEVELS:
            problems.append(
                Problem(
                    f"'log_level' must be one of {', '.join(LOG_LEVELS)}, got {level!r}",
                    location.with_field("log_level"),
                )
            )
        return problems

    def run(self, ctx: StepContext, config: Mapping[str, Any], inputs: dict[str, Any]) -> Any:
        """Call the function in the session; return its value with Spark DataFrames as pandas.

        Raises :class:`~kaon.errors.StepError` (``SparkError``, ``Timeout``, ``Cancelled``) and
        whatever the function raises that is not a Spark error.
        """
        fn = self._function(config)
        master, conf = session_settings(config)
        level = str(config.get("log_level", "WARN")).upper()
        with _Session.lock:
            spark = get_session(ctx, master, conf, level)
            group = f"kaon-{ctx.run_id}-{ctx.step}-{ctx.attempt}"
            spark.sparkContext.setJobGroup(group, "kaon step", interruptOnCancel=True)
            watch = AttemptWatch(
                ctx,
                lambda: spark.sparkContext.cancelJobGroup(group),
                name="kaon-spark-watch",
                what="Spark job",
                interval_s=_TAIL_S,
            )
            try:
                with _LogTail(ctx, _Session.log_path), watch, _quiet_pandas_warning():
                    kwargs = self._arguments(fn, spark, config, inputs)
                    value = fn(**kwargs)
                    if isinstance(value, Mapping):
                        return {k: _to_pandas(v) for k, v in value.items()}
                    return _to_pandas(value)
            except StepError:
                raise  # the watch's Timeout or Cancelled, or the function's own
            except Exception as exc:
                if not _is_spark_error(exc):
                    raise
                text = str(exc)
                raise StepError("SparkError", first_meaningful_line(text), text) from None

    def fingerprint(self, config: Mapping[str, Any]) -> CodeFingerprint:
        """The job function and everything it reads from the project, as a Python step's
        (:mod:`kaon.steptypes.fingerprint`: a module constant, a helper it imports), with the
        rest of the configuration (master, resources, conf). Where the file lives and the
        module's import name are not part of it."""
        from kaon.steptypes.fingerprint import fingerprint_code

        function = self._function(config)
        code = fingerprint_code(function)
        rest = {k: v for k, v in config.items() if k not in ("file", "base_dir", "function")}
        rest["function"] = getattr(inspect.unwrap(function), "__qualname__", "")
        canonical = json.dumps(rest, sort_keys=True, default=str, separators=(",", ":"))
        config_digest = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
        return dataclasses.replace(code, config=config_digest)

    @staticmethod
    def _function(config: Mapping[str, Any]) -> Callable[..., Any]:
        from kaon.steptypes.python import resolve_function

        target = {"function": config["function"]}
        if config.get("file"):
            target["file"] = resolve_file(config, "file")
        return resolve_function(target)

    @staticmethod
    def _arguments(
        fn: Callable[..., Any], spark: Any, config: Mapping[str, Any], inputs: Mapping[str, Any]
    ) -> dict[str, Any]:
        parameters = inspect.signature(fn).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        wanted = config.get("spark_inputs", [])
        kwargs: dict[str, Any] = {}
        for name, value in inputs.items():
            convert = wanted == "all" or name in wanted or _wants_spark_frame(fn, name)
            kwargs[name] = (
                spark.createDataFrame(value) if convert and _is_pandas_frame(value) else value
            )
        if "spark" in parameters or takes_any:
            kwargs["spark"] = spark
        return kwargs


def stop_session() -> None:
    """Stop this process's SparkSession if one runs (it is restarted on the next Spark step)."""
    _stop_session()
