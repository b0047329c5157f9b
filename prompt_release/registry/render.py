"""Render a prompt template: Jinja2 in a sandbox with strict undefined and a budget.

Templates are compiled once per package hash and reused, so a production
app pays only for the render itself. A missing placeholder fails naming the
variable; variables the template never uses are reported so a caller can warn.

A template is code that arrives in a pull request, and the sandbox only stops
it reaching Python internals, not burning CPU or memory. So every render
(register, verify, staging, backtest, the runtime client: all go through
`render_text`) has a budget: a wall-clock limit (`PROMPT_RELEASE_RENDER_TIMEOUT_S`)
checked at every loop iteration and every call (macros included), and an
output limit (`PROMPT_RELEASE_RENDER_MAX_BYTES`) on what is produced and on
any string or list a `*`, `+` or `**` would build. Going over is one
`UserError` naming the version; so are runaway recursion and the sandbox's
own refusals (e.g. `range` past 100,000).
"""

from __future__ import annotations

import math
import re
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from prompt_release import config
from prompt_release.errors import UserError


class RenderBudgetError(UserError):
    """A render went over its time or size budget."""


@dataclass
class _Budget:
    deadline: float
    max_bytes: int
    where: str | None

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderBudgetError(
                f"rendering {self.where or 'the template'} took longer than {config.render_timeout_s():g}s "
                f"({config.ENV_RENDER_TIMEOUT_S})"
            )

    def too_big(self, size: int, what: str) -> None:
        if size > self.max_bytes:
            raise RenderBudgetError(
                f"rendering {self.where or 'the template'} would build {what} of {size:,} bytes, over the limit of "
                f"{self.max_bytes:,} ({config.ENV_RENDER_MAX_BYTES})"
            )


_budget: ContextVar[_Budget | None] = ContextVar("render_budget", default=None)
_LOOP = "__prompt_release_loop"


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else None


# `%` formatting with a width (`'%*s' % (10**9, '')`, `'%999999999d'`) builds its padding at once
_WIDE_FORMAT = re.compile(r"%[-#0 +]*(\*|\d{7,})")


class _BudgetedEnvironment(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context, operator, left, right):  # type: ignore[override]
        budget = _budget.get()
        if budget is not None:
            budget.tick()
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if _sized(seq) is not None and isinstance(n, int):
                        budget.too_big(_sized(seq) * max(n, 0), "a repeated value")
            elif operator == "+" and _sized(left) is not None and _sized(right) is not None:
                budget.too_big(_sized(left) + _sized(right), "a concatenation")
            elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
                budget.too_big(int(right * math.log2(abs(left)) / 8) + 1, "a number")
            elif operator == "%" and isinstance(left, str) and _WIDE_FORMAT.search(left):
                budget.too_big(budget.max_bytes + 1, "a %-format with a width of 7 digits or *")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # type: ignore[override]  # noqa: N805
        budget = _budget.get()
        if budget is not None:
            budget.tick()
        return super().call(__context, __obj, *args, **kwargs)


def _loop(iterable):
    """Every `for` loop of a template iterates through this (see `_budget_loops`)."""
    budget = _budget.get()
    for item in iterable:
        if budget is not None:
            budget.tick()
        yield item


_ENV = _BudgetedEnvironment(
    # the optimizer folds constant expressions at compile time, outside any budget
    optimized=False,
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
)
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")
_compiled: dict[str, jinja2.Template] = {}
_compile_lock = threading.Lock()


def _concat(*parts: Any) -> str:
    texts = [str(part) for part in parts]
    budget = _budget.get()
    if budget is not None:
        budget.too_big(sum(map(len, texts)), "a concatenation")
    return "".join(texts)


def _widths_checked(name: str):
    original = _ENV.filters[name]

    def checked(value, *args, **kwargs):
        budget = _budget.get()
        if budget is None:  # the compiler folding a constant: leave it to the render, under its budget
            raise nodes.Impossible()
        if budget is not None and name == "format" and isinstance(value, str) and _WIDE_FORMAT.search(value):
            budget.too_big(budget.max_bytes + 1, "a %-format with a width of 7 digits or *")
        if budget is not None:
            for arg in (*args, *kwargs.values()):
                if isinstance(arg, int) and not isinstance(arg, bool):
                    budget.too_big(arg, f"the result of |{name}")
        return original(value, *args, **kwargs)

    return checked


class _Budgeter(NodeTransformer):
    """Route what the sandbox cannot see through budgeted helpers: every `for`
    iterable (an empty nested loop makes no call and no output, so only its
    iterator can see the clock) and every `~` concatenation."""

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.generic_visit(node)
        node.iter = nodes.Call(nodes.Name(_LOOP, "load"), [node.iter], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Call:
        self.generic_visit(node)
        return nodes.Call(nodes.Name(_CONCAT, "load"), node.nodes, [], None, None, lineno=node.lineno)


def _budget_loops(ast: nodes.Template) -> nodes.Template:
    return _Budgeter().visit(ast)


_CONCAT = "__prompt_release_concat"
_ENV.globals[_LOOP] = _loop
_ENV.globals[_CONCAT] = _concat
for _name in ("center", "indent", "truncate", "wordwrap", "format"):
    _ENV.filters[_name] = _widths_checked(_name)


def compile_template(text: str, *, key: str | None = None, file: str | None = None) -> jinja2.Template:
    """Compile `text` once; `key` (the package hash) makes the cache lookup cheap."""
    cache_key = key or text
    template = _compiled.get(cache_key)
    if template is not None:
        return template
    try:
        ast = _budget_loops(_ENV.parse(text))
        template = _ENV.template_class.from_code(_ENV, _ENV.compile(ast), _ENV.make_globals(None), None)
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


def render_text(template: jinja2.Template, variables: dict, *, where: str | None = None) -> str:
    budget = _Budget(time.monotonic() + config.render_timeout_s(), config.render_max_bytes(), where)
    token = _budget.set(budget)
    suffix = f" rendering {where}" if where else ""
    try:
        parts, size = [], 0
        for part in template.generate(variables):
            size += len(part)
            budget.too_big(size, "an output")
            budget.tick()
            parts.append(part)
        return "".join(parts)
    except jinja2.UndefinedError as exc:
        match = _UNDEFINED_NAME.search(str(exc))
        name = match.group(1) if match else str(exc)
        raise UserError(
            f"missing template variable {name!r}" + suffix,
            field=f"variables.{name}" if match else "variables",
        ) from None
    except jinja2.exceptions.SecurityError as exc:
        raise UserError(f"template tried an unsafe operation{suffix}: {exc}") from None
    except RecursionError:
        raise RenderBudgetError(f"template recursion too deep{suffix} (a macro calling itself without end?)") from None
    except (OverflowError, MemoryError) as exc:
        raise RenderBudgetError(f"template asked for too much{suffix}: {type(exc).__name__}: {exc}") from None
    finally:
        _budget.reset(token)


def unused_variables(text: str, variables: dict) -> list[str]:
    used = set(required_variables(text))
    return sorted(name for name in variables if name not in used)
