"""Model references: what users and phases write to name a model version."""

from __future__ import annotations

import pytest

from engine.errors import BadModelRefError, ConfigError
from engine.model_registry import LATEST, ModelRef, previous_alias, validate_alias, validate_model_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sam2-compact", ModelRef("sam2-compact")),
        ("sam2-compact@champion", ModelRef("sam2-compact", alias="champion")),
        ("sam2-compact@3", ModelRef("sam2-compact", version=3)),
        ("sam2-compact@latest", ModelRef("sam2-compact", alias=LATEST)),
        ("facebook/sam2.1-hiera-tiny", ModelRef("facebook/sam2.1-hiera-tiny")),
        ("facebook/sam2.1-hiera-tiny@12", ModelRef("facebook/sam2.1-hiera-tiny", version=12)),
        ("my_model.v2@previous-champion", ModelRef("my_model.v2", alias="previous-champion")),
        ("  sam2-compact@2 ", ModelRef("sam2-compact", version=2)),
    ],
)
def test_references_parse_and_print_back(text: str, expected: ModelRef) -> None:
    ref = ModelRef.parse(text)
    assert ref == expected
    assert ModelRef.parse(str(ref)) == ref
    assert str(ref) == text.strip()


def test_a_bare_name_asks_for_the_default() -> None:
    assert ModelRef.parse("sam2-compact").is_default
    assert not ModelRef.parse("sam2-compact@latest").is_default
    assert not ModelRef.parse("sam2-compact@1").is_default


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "@3",
        "sam2-compact@",
        "sam2-compact@@3",
        "sam2-compact@3@4",
        "sam2-compact@0",
        "sam2-compact@-1",
        "sam2-compact@3.5",
        "sam 2",
        "/sam2",
        "sam2/",
        "facebook//sam2",
        "../sam2",
        "sam2/./x",
        ".tmp-model",
        "-model",
        "facebook/3",  # a numeric segment would clash with version folders
        "3",
        "x" * 129,
        "sam2@" + "a" * 65,
        "sam2@_alias",
        "s\u00e4m",
    ],
)
def test_malformed_references_are_refused_with_the_expected_forms(text: str) -> None:
    with pytest.raises(BadModelRefError) as caught:
        ModelRef.parse(text)
    assert str(caught.value)


def test_a_malformed_reference_says_what_is_expected() -> None:
    with pytest.raises(BadModelRefError, match=r"NAME@VERSION.*sam2-compact@champion"):
        ModelRef.parse("sam2-compact@")
    with pytest.raises(BadModelRefError, match="bare number"):
        ModelRef.parse("facebook/3")


def test_bad_references_are_configuration_errors() -> None:
    """They come from settings and command lines, and are reported as such."""
    with pytest.raises(ConfigError):
        ModelRef.parse("no good")


def test_names_allow_hub_style_paths_up_to_the_column_width() -> None:
    assert validate_model_name("facebook/sam2.1-hiera-base-plus") == "facebook/sam2.1-hiera-base-plus"
    assert validate_model_name("a" * 128) == "a" * 128
    assert validate_model_name("2024-model") == "2024-model"


@pytest.mark.parametrize("alias", ["latest", "previous-champion", "3", "", "a b", "a" * 65])
def test_aliases_that_cannot_be_set(alias: str) -> None:
    with pytest.raises(BadModelRefError):
        validate_alias(alias)


def test_aliases_that_can_be_set() -> None:
    assert validate_alias("champion") == "champion"
    assert validate_alias("candidate-2024.06") == "candidate-2024.06"
    assert validate_alias("previous-champion", settable=False) == "previous-champion"
    assert previous_alias("champion") == "previous-champion"


def test_version_and_alias_together_are_refused() -> None:
    with pytest.raises(BadModelRefError, match="not both"):
        ModelRef("sam2-compact", version=1, alias="champion")
