from __future__ import annotations

import pytest

from longcert import settings
from longcert.errors import ConfigError


def load(flags: dict[str, object] | None = None, env: dict[str, str] | None = None):
    return settings.load(flags or {}, environ=env or {})


def test_defaults_and_sources() -> None:
    conf = load()
    assert conf.years == 10
    assert conf.ca_years == 10
    assert conf.platforms == ("linux/amd64",)
    assert conf.sources["years"] == "default"
    assert conf.sources["ca_years"].startswith("auto")


def test_flag_beats_env_beats_default() -> None:
    conf = load({"years": "20"}, {"LONGCERT_YEARS": "5", "LONGCERT_REPO": "/srv/k8s"})
    assert conf.years == 20
    assert conf.sources["years"] == "flag --years"
    assert conf.repo == "/srv/k8s"
    assert conf.sources["repo"] == "env LONGCERT_REPO"


def test_ca_years_auto_follows_larger_leaf() -> None:
    assert load({"years": "100"}).ca_years == 100
    assert load({"years": "3"}).ca_years == 10
    assert load({"years": "100", "ca_years": "100"}).ca_years == 100


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "", "293", "10y"])
def test_bad_years(value: str) -> None:
    with pytest.raises(ConfigError, match="--years"):
        load({"years": value})


def test_max_years_is_292() -> None:
    assert load({"years": "292", "ca_years": "292"}).years == 292


def test_leaf_longer_than_ca() -> None:
    with pytest.raises(ConfigError, match="longer than --ca-years"):
        load({"years": "20", "ca_years": "10"})


def test_unknown_env_key_hints() -> None:
    with pytest.raises(ConfigError, match="did you mean 'years'"):
        load(env={"LONGCERT_YEAR": "3"})


def test_unknown_platform_hints() -> None:
    with pytest.raises(ConfigError, match="did you mean linux/arm64"):
        load({"platforms": "linux/amd64,linux/arm46"})


def test_platform_list() -> None:
    conf = load({"platforms": "linux/amd64, linux/arm64 linux/amd64"})
    assert conf.platforms == ("linux/amd64", "linux/arm64")


@pytest.mark.parametrize("value", ["1.24", "1.24.11", "go1.21.13", "auto"])
def test_go_version(value: str) -> None:
    assert load({"go_version": value}).go_version == value.removeprefix("go")


def test_bad_go_version_and_image() -> None:
    with pytest.raises(ConfigError, match="go-version"):
        load({"go_version": "latest"})
    with pytest.raises(ConfigError, match="placeholder"):
        load({"image": "golang:{go}"})
