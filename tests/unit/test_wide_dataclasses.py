"""Wide dataclasses take their fields by name, so two of a type cannot be swapped unseen."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import modeld
import modeld_server

WIDE = 7
"""A dataclass with this many fields or more is wide."""
POSITIONAL = 2
"""The most fields a wide one may still take by position (model and data, say)."""


def _modules(package: ModuleType) -> list[ModuleType]:
    names = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
             if ".v1." not in m.name + "." and ".v2." not in m.name + "."]
    return [package, *(importlib.import_module(name) for name in names)]


def _wide() -> list[type]:
    found = {}
    for module in _modules(modeld_server) + _modules(modeld):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (dataclasses.is_dataclass(cls) and cls.__module__ == module.__name__
                    and len([f for f in dataclasses.fields(cls) if f.init]) >= WIDE):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [found[name] for name in sorted(found)]


def test_the_walk_finds_the_known_wide_ones() -> None:
    names = {cls.__qualname__ for cls in _wide()}
    assert {"TrainSpec", "Settings", "Manifest", "JobRecord", "Prepared"} <= names


@pytest.mark.parametrize("cls", _wide(), ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_a_wide_dataclass_takes_its_fields_by_name(cls: type) -> None:
    positional = [f.name for f in dataclasses.fields(cls) if f.init and not f.kw_only]
    assert len(positional) <= POSITIONAL, (
        f"{cls.__qualname__} takes {positional} by position: make it kw_only")


def test_the_client_spec_refuses_a_third_positional_field() -> None:
    """The fifteen-field TrainSpec once built positionally: target and algorithm (both str)
    could change places without a type error."""
    with pytest.raises(TypeError, match="positional"):
        modeld.TrainSpec("m", "d.csv", "is_spam")  # type: ignore[misc]
    assert modeld.TrainSpec("m", "d.csv", target="is_spam").target == "is_spam"
