"""The two front ends, Python decorators and YAML files, both producing model specs.

:mod:`kaon.dsl.python` holds ``@kaon.step`` / ``@kaon.workflow``; :mod:`kaon.dsl.yaml_loader`
reads YAML; :mod:`kaon.dsl.loader` loads either from a ``FILE[:WORKFLOW]`` target.
"""
