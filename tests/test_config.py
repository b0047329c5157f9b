"""Settings resolve explicit argument > environment variable > default, and the README lists each variable."""

from __future__ import annotations

import re
from pathlib import Path

from prompt_release import config
from prompt_release.llm.settings import LLMSettings

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_core_variable_is_in_the_readme_table():
    names = {v for k, v in vars(config).items() if k.startswith("ENV_")}
    table = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_]+)`", table, re.M))
    assert names <= documented, sorted(names - documented)


def test_ingest_settings_resolution(monkeypatch):
    monkeypatch.delenv(config.ENV_INGEST_MEMORY_LIMIT, raising=False)
    monkeypatch.delenv(config.ENV_INGEST_CHUNK_BYTES, raising=False)
    assert (config.ingest_memory_limit(), config.ingest_chunk_bytes()) == ("512MB", 64 * 1024 * 1024)
    monkeypatch.setenv(config.ENV_INGEST_MEMORY_LIMIT, "1GB")
    monkeypatch.setenv(config.ENV_INGEST_CHUNK_BYTES, "4096")
    assert (config.ingest_memory_limit(), config.ingest_chunk_bytes()) == ("1GB", 4096)
    assert (config.ingest_memory_limit("2GB"), config.ingest_chunk_bytes(10)) == ("2GB", 10)


def test_endpoint_one_resolution_order(monkeypatch):
    monkeypatch.delenv(config.ENV_BASE_URL, raising=False)
    monkeypatch.delenv(config.ENV_API_KEY, raising=False)
    assert LLMSettings.from_env().base_url is None  # the embedded simulator
    monkeypatch.setenv(config.ENV_BASE_URL, "http://env.example/v1")
    monkeypatch.setenv(config.ENV_API_KEY, "sk-env")
    settings = LLMSettings.from_env()
    assert settings.base_url == "http://env.example/v1" and settings.api_key.get_secret_value() == "sk-env"
    assert "sk-env" not in repr(settings)
    explicit = LLMSettings.from_env(base_url="http://explicit.example/v1", api_key="sk-explicit")
    assert explicit.base_url == "http://explicit.example/v1"
    assert explicit.api_key.get_secret_value() == "sk-explicit"


def test_the_actor_is_the_ci_identity_on_its_host_never_a_token(monkeypatch):
    import socket

    for name in (config.ENV_ACTOR, "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "CI_COMMIT_AUTHOR", "BUILDKITE_BUILD_CREATOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USER", "alice")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    host = socket.gethostname()
    assert config.actor() == f"alice@{host}"
    monkeypatch.setenv("GITHUB_ACTOR", "octocat")
    assert config.actor() == f"github:octocat@{host}"
    assert "ghp_secret" not in config.actor()
    monkeypatch.setenv(config.ENV_ACTOR, "release-bot")
    assert config.actor() == "release-bot"
    assert config.actor("  oncall ") == "oncall"
