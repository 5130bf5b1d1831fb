"""Compiled Faker samplers draw exactly what Faker draws, and leave the random state where
Faker leaves it."""

from __future__ import annotations

import random
from collections import OrderedDict
from typing import Any

import faker
import faker.generator
import pytest

from invoicegen.identities import MAP_DRAW
from invoicegen.seeding.compiled import COMPILED, Compiler, FastRandom, compile_faker
from invoicegen.seeding.generate import fast_faker

LOCALES = ["en_US", "de_DE", "ja_JP", "ru_RU", "zh_CN", "hu_HU", "fr_FR", "pl_PL", "ko_KR",
           "ar_AA", "fil_PH", "pt_BR"]  # fmt: skip


def _generator(fake: Any) -> Any:
    return fake.get_providers()[0].generator


def _compiled_names(fake: Any) -> list[str]:
    """The methods that really are compiled (not Faker's own bound method)."""
    generator = _generator(fake)
    return [
        n
        for n in COMPILED
        if hasattr(generator, n) and not hasattr(getattr(generator, n), "__self__")
    ]


@pytest.mark.parametrize("locale", LOCALES)
def test_compiled_providers_draw_what_faker_draws(locale: str) -> None:
    reference, compiled = faker.Faker(locale), compile_faker(faker.Faker(locale))
    names = _compiled_names(compiled)
    assert names  # some are compiled in every locale (others stay Faker's: see below)
    shared = faker.generator.random  # both draw from Faker's module-level generator
    for seed in range(150):
        for name in names:
            shared.seed(seed)
            expected, state = getattr(reference, name)(), shared.getstate()
            shared.seed(seed)
            assert getattr(compiled, name)() == expected, (locale, name, seed)
            assert shared.getstate() == state, (locale, name, seed)


def test_names_are_compiled_where_the_locale_keeps_faker_tables() -> None:
    assert {"first_name_male", "company", "catch_phrase", "phone_number"} <= set(
        _compiled_names(compile_faker(faker.Faker("en_US")))
    )
    assert {"first_name_male_pair", "last_name_pair"} <= set(
        _compiled_names(compile_faker(faker.Faker("ja_JP")))
    )


@pytest.mark.parametrize("locale", ["en_US", "ja_JP", "ru_RU"])
def test_a_mapped_table_draw_is_the_function_of_the_draw(locale: str) -> None:
    """``map_draw`` (identities' names with their readings) draws ``function(draw())`` from
    the same random numbers, and maps only the table draws the compiler made."""
    compiled = compile_faker(faker.Faker(locale))
    generator = _generator(compiled)
    map_draw = getattr(generator, MAP_DRAW)
    names = [n for n in _compiled_names(compiled) if n.endswith(("_name", "_pair", "suffix"))]
    assert names
    shared = faker.generator.random
    for name in names:
        draw = getattr(generator, name)
        mapped = map_draw(draw, lambda value: (value, repr(value)))
        for seed in range(100):
            shared.seed(seed)
            value, state = draw(), shared.getstate()
            shared.seed(seed)
            assert mapped() == (value, repr(value)), (locale, name, seed)
            assert shared.getstate() == state, (locale, name, seed)
    assert map_draw(generator.company, repr) is None  # a format over tables: not one table
    assert map_draw(lambda: "Smith", repr) is None


@pytest.mark.parametrize(
    "text",
    [
        "###-###-####",
        "(%##) $##-!!@@",
        "+49 (0#) ### ##",
        "no digits",
        "100% ##",
        "$##$######",
        "%$#%$#",
        "$",
        "#" * 40,
    ],
)
def test_numerify_draws_in_fakers_order(text: str) -> None:
    provider = faker.Faker("en_US").get_providers()[0]
    shared = provider.generator.random
    numerify = Compiler(shared).numerify(text)
    for seed in range(300):
        shared.seed(seed)
        expected, state = provider.numerify(text), shared.getstate()
        shared.seed(seed)
        assert numerify() == expected and shared.getstate() == state, (text, seed)


def test_a_table_faker_would_refuse_stays_fakers() -> None:
    provider = faker.Faker("en_US").get_providers()[0]
    compiler = Compiler(random.Random(1))
    assert compiler.element(provider, {"a": 1.0}) is None  # a plain dict: Faker raises
    assert compiler.element(provider, ()) is None
    weighted = compiler.element(provider, OrderedDict([("a", 0.0), ("b", 1.0)]))
    assert weighted is not None and {weighted() for _ in range(50)} == {"b"}


def test_a_method_a_locale_overrides_stays_its_own() -> None:
    class Odd(faker.providers.company.Provider):  # type: ignore[name-defined,misc]
        def company(self) -> str:
            return "Odd Inc"

    fake = faker.Faker("en_US")
    fake.add_provider(Odd)
    assert compile_faker(fake).company() == "Odd Inc"


def test_the_engines_faker_is_compiled() -> None:
    assert "company" in _compiled_names(fast_faker("en_US"))


def test_fast_random_draws_what_random_draws() -> None:
    for seed in range(40):
        reference, fast = random.Random(seed), FastRandom(seed)
        for low, high in ((0, 0), (1, 28), (0, 9), (30, 365), (1, 1095), (0, 2**40)):
            assert [fast.randint(low, high) for _ in range(20)] == [
                reference.randint(low, high) for _ in range(20)
            ]
        for seq in (["a"], ("US", "GB", "DE"), range(3, 17), list(range(1000))):
            assert [fast.choice(seq) for _ in range(20)] == [
                reference.choice(seq) for _ in range(20)
            ]
        assert fast.random() == reference.random() and fast.getstate() == reference.getstate()
        reference.gauss(0, 1), fast.gauss(0, 1)  # each keeps a second normal: seeding drops it
        reference.seed(seed * 2**40 + 7)
        fast.reseed(seed * 2**40 + 7)
        assert fast.getstate() == reference.getstate()
    with pytest.raises(ValueError):
        FastRandom(1).randint(3, 2)
    with pytest.raises(IndexError):
        FastRandom(1).choice([])
