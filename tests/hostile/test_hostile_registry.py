"""Hostile registry files: YAML alias bombs, oversized manifests, template resource bombs and
labels.json of the wrong shape each end in one clear error naming the file or the version."""

from __future__ import annotations

import pytest

from prompt_release.errors import UserError
from prompt_release.registry import Registry
from prompt_release.registry.manifest import parse_manifest
from prompt_release.registry.render import compile_template, render_text
from tests.conftest import run_cli
from tests.registry.conftest import copy_sample_registry

BILLION_LAUGHS = """id: support_router
version: 9.0.0
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
variables: *i
"""


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPT_RELEASE_ACTOR", "test-runner")
    return copy_sample_registry(tmp_path / "registry")


@pytest.mark.parametrize("command", [["prompts", "list"], ["prompts", "show", "support_router"]])
def test_yaml_alias_bomb_manifest_is_one_clear_error(registry, command):
    (registry / "prompts" / "support_router" / "v9.0.0.yaml").write_text(BILLION_LAUGHS)
    # the timeout only guards the suite against the bomb going off (>30 s, >2 GB before the fix)
    done = run_cli(*command, "--registry", str(registry), timeout=60)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "v9.0.0.yaml:4" in done.stderr and "aliases" in done.stderr


def test_manifest_past_the_size_limit_is_refused_before_parsing(monkeypatch):
    monkeypatch.setenv("PROMPT_RELEASE_MAX_MANIFEST_BYTES", "1000")
    with pytest.raises(UserError, match="over the limit of 1,000 .PROMPT_RELEASE_MAX_MANIFEST_BYTES") as error:
        parse_manifest("id: x\n" + "# padding\n" * 200, file="prompts/x/v1.0.0.yaml")
    assert error.value.file == "prompts/x/v1.0.0.yaml"


TEMPLATE_BOMBS = {
    "range past the sandbox": "{% for i in range(10**9) %}x{% endfor %}",
    "nested empty loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "nested loops with output": "{% for i in range(100000) %}{% for j in range(100000) %}ab{% endfor %}{% endfor %}",
    "string multiplication": "{{ 'x' * 10**10 }}",
    "repeated concatenation": "{% set a = 'x' * 100000 %}{% set b = a ~ a ~ a ~ a %}{% set c = b ~ b ~ b ~ b %}{{ c }}",
    "recursive macro": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "padding filter": "{{ 'x'|center(10**9) }}",
    "format width": "{{ '%999999999d'|format(1) }}",
    "loop over a long string": "{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
}


@pytest.mark.parametrize("name", sorted(TEMPLATE_BOMBS))
def test_template_resource_bombs_end_in_one_error_naming_the_version(name, monkeypatch):
    monkeypatch.setenv("PROMPT_RELEASE_RENDER_TIMEOUT_S", "0.5")
    template = compile_template(TEMPLATE_BOMBS[name], key=f"bomb-{name}")
    with pytest.raises(UserError) as error:
        render_text(template, {}, where="support_router:v9.0.0")
    assert "support_router:v9.0.0" in str(error.value)


def test_ordinary_templates_still_render():
    text = "Hi {{ name ~ '!' }} {% for i in range(3) %}{{ i }}{% endfor %} {{ 'a'|center(5) }}|{{ '%3d' % 7 }}"
    assert render_text(compile_template(text), {"name": "Ann"}) == "Hi Ann! 012   a  |  7"


def test_register_refuses_a_template_bomb(registry, monkeypatch):
    monkeypatch.setenv("PROMPT_RELEASE_RENDER_TIMEOUT_S", "0.5")
    folder = registry / "prompts" / "support_router"
    manifest = (folder / "v1.7.0.yaml").read_text().replace("1.7.0", "1.8.0")
    (folder / "v1.8.0.yaml").write_text(manifest)
    (folder / "v1.8.0.md").write_text(TEMPLATE_BOMBS["nested empty loops"])
    with pytest.raises(UserError, match="support_router:v1.8.0"):
        Registry(registry).register("support_router:v1.8.0")


@pytest.mark.parametrize(
    "content",
    [
        "[]",
        '{"labels": []}',
        '{"production": {}}',
        '{"labels": {"production": "x"}}',
        '{"labels": {"production": {"version_id": 3, "package_hash": "h"}}}',
        "7",
    ],
)
@pytest.mark.parametrize("command", ["show", "label"])
def test_wrong_shaped_labels_file_is_one_error_naming_it(registry, content, command):
    labels = registry / "prompts" / "support_router" / "labels.json"
    labels.write_text(content)
    args = (
        ["prompts", "show", "support_router"]
        if command == "show"
        else ["prompts", "label", "support_router", "staging", "support_router:v1.5.2", "--reason", "test"]
    )
    done = run_cli(*args, "--registry", str(registry))
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr
    assert "labels.json" in done.stderr
    assert labels.read_text() == content  # nothing rewritten
