"""Render a prompt template: Jinja2 in a sandbox with strict undefined.

Templates are compiled once per package hash and reused, so a production
app pays only for the render itself. A missing placeholder fails naming the
variable; variables the template never uses are reported so a caller can warn.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from prompt_release.errors import UserError

_ENV = SandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
)
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")
_compiled: dict[str, jinja2.Template] = {}
_compile_lock = threading.Lock()


def compile_template(text: str, *, key: str | None = None, file: str | None = None) -> jinja2.Template:
    """Compile `text` once; `key` (the package hash) makes the cache lookup cheap."""
    cache_key = key or text
    template = _compiled.get(cache_key)
    if template is not None:
        return template
    try:
        template = _ENV.from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"template syntax error: {exc.message}", file=file, line=exc.lineno) from None
    with _compile_lock:
        _compiled[cache_key] = template
    return template


@lru_cache(maxsize=1024)
def required_variables(text: str) -> tuple[str, ...]:
    """The variables the template reads, sorted (what a caller must supply)."""
    try:
        ast = _ENV.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"template syntax error: {exc.message}", line=exc.lineno) from None
    return tuple(sorted(meta.find_undeclared_variables(ast)))


def render_text(
    template: jinja2.Template, variables: dict, *, where: str | None = None
) -> str:
    try:
        return template.render(variables)
    except jinja2.UndefinedError as exc:
        match = _UNDEFINED_NAME.search(str(exc))
        name = match.group(1) if match else str(exc)
        raise UserError(
            f"missing template variable {name!r}" + (f" rendering {where}" if where else ""),
            field=f"variables.{name}" if match else "variables",
        ) from None
    except jinja2.exceptions.SecurityError as exc:
        raise UserError(f"template tried an unsafe operation: {exc}") from None


def unused_variables(text: str, variables: dict) -> list[str]:
    used = set(required_variables(text))
    return sorted(name for name in variables if name not in used)
