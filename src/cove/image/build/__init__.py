"""`cove build`: images from a Dockerfile (Containerfile).

The front end, pure Python (no containers, no engine):

- `parse_dockerfile(text, filename=...)` -> `Dockerfile`: stages of typed instruction
  records (`cove.image.build.instructions`), parser directives, notes.
- `plan(dockerfile, target=..., build_args=..., ...)` -> `BuildPlan`: the stages the
  target needs, their bases, dependencies and parallel levels, the global ARG values,
  the unused build args.
- `StageScope`: ARG/ENV values of one stage while its instructions are expanded
  (`scope.expand(instruction)`), and the environments for RUN and the image config.
- `IgnoreRules` / `load_ignore_rules` / `context_files`: `.dockerignore` and
  `.containerignore`.

Errors: `cove.errors.DockerfileError` ("Dockerfile:7: unknown instruction: FORM") for the
file, `cove.errors.BuildError` for the rest (unknown target, bad ignore pattern).
"""

from __future__ import annotations

from cove.image.build.expand import (
    BUILTIN_ARGS,
    PLATFORM_ARGS,
    PROXY_ARGS,
    StageScope,
    automatic_args,
    expand_from,
    global_scope,
    parse_expose,
)
from cove.image.build.ignore import (
    IgnoreRules,
    context_files,
    find_ignore_file,
    load_ignore_rules,
)
from cove.image.build.instructions import Dockerfile, Instruction, Note, Stage
from cove.image.build.parser import parse_dockerfile, parse_instruction
from cove.image.build.plan import BuildPlan, Dependency, StagePlan, plan
from cove.image.build.shellwords import expand_word, expand_words

__all__ = [
    "BUILTIN_ARGS",
    "PLATFORM_ARGS",
    "PROXY_ARGS",
    "BuildPlan",
    "Dependency",
    "Dockerfile",
    "IgnoreRules",
    "Instruction",
    "Note",
    "Stage",
    "StagePlan",
    "StageScope",
    "automatic_args",
    "context_files",
    "expand_from",
    "expand_word",
    "expand_words",
    "find_ignore_file",
    "global_scope",
    "load_ignore_rules",
    "parse_dockerfile",
    "parse_expose",
    "parse_instruction",
    "plan",
]
