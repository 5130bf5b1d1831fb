"""Rows for the seeding engine, from the factories' own declarations.

factory-boy's ``build()`` runs a general-purpose builder per object (declaration parsing,
context unrolling, resolver objects): about 100 µs of bookkeeping per row, more than the
database spends storing it. :class:`RowMaker` reads a factory's declarations once and
evaluates the same declarations, in the same order, against the same random generators, so a
row holds exactly the values ``Factory.build()`` would give (``tests/test_rows.py`` proves it
for every factory) at a fraction of the cost. The factories stay the one definition of what a
row looks like; a declaration kind this module does not know is refused when the maker is
created, never silently approximated.
"""

from __future__ import annotations

import functools
import operator
from collections import OrderedDict
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Any

import factory
import faker
from factory.declarations import SKIP, BaseDeclaration

from invoicegen.errors import FactoryValueError
from invoicegen.identities import FromLocale

Evaluator = Callable[["_Draft"], Any]
_MISSING = object()


class _Draft:
    """The object LazyAttribute functions see: declared values, computed on first access."""

    def __init__(self, maker: RowMaker, given: dict[str, Any]) -> None:
        self.__dict__.update(given)
        self.__dict__["_maker"] = maker

    def __getattr__(self, name: str) -> Any:
        evaluator = self._maker.evaluators.get(name)
        if evaluator is None:
            raise AttributeError(name)
        self.__dict__[name] = _MISSING  # a cycle shows up as this marker, not a RecursionError
        value = evaluator(self)
        self.__dict__[name] = value
        return value


class RowMaker:
    """Evaluates ``factory_class``'s declarations into a tuple of ``fields``."""

    def __init__(self, factory_class: type[Any], fields: Sequence[str], *, locale: str) -> None:
        self.name = factory_class.__name__
        self.fields = tuple(fields)
        self.locale = locale
        declarations = factory_class._meta.pre_declarations.as_dict()
        self.evaluators: dict[str, Evaluator] = {
            name: self._compile(name, declaration) for name, declaration in declarations.items()
        }
        self._steps = tuple(self.evaluators.items())
        self._pick = operator.itemgetter(*self.fields)
        self._sequence = 0

    def make(self, **given: Any) -> tuple[Any, ...]:
        draft = _Draft(self, given)
        values = draft.__dict__
        for name, evaluate in self._steps:  # factory-boy resolves every declaration, in order
            if name not in values:
                values[name] = _MISSING  # a cycle shows up as this marker
                values[name] = evaluate(draft)
        picked = self._pick(values)
        return picked if len(self.fields) > 1 else (picked,)

    def _compile(self, name: str, declaration: Any) -> Evaluator:
        if not isinstance(declaration, BaseDeclaration):
            return lambda _draft: declaration
        if isinstance(declaration, FromLocale):
            draw, fake = declaration.draw, fast_faker(self.locale)
            return lambda _draft: draw(fake)
        if isinstance(declaration, factory.Faker):
            options = dict(declaration._defaults)
            locale = options.pop("locale", None) or self.locale
            if any(isinstance(v, BaseDeclaration) for v in options.values()):
                raise self._refuse(name, "Faker with lazy arguments")
            provider = getattr(fast_faker(locale), declaration.provider)
            return lambda _draft: provider(**options)
        if isinstance(declaration, factory.LazyAttribute):
            lazy_attribute: Evaluator = declaration.function  # it takes the draft itself
            return lazy_attribute
        if isinstance(declaration, factory.LazyFunction):
            function = declaration.function
            return lambda _draft: function()
        if isinstance(declaration, factory.SelfAttribute):
            if declaration.depth > 1:
                raise self._refuse(name, "SelfAttribute of a parent factory")
            path = declaration.attribute_name.split(".")
            default = declaration.default
            return lambda draft: _deep_get(draft, path, default)
        if isinstance(declaration, factory.Sequence):
            function = declaration.function

            def sequence(_draft: _Draft) -> Any:
                self._sequence += 1
                return function(self._sequence - 1)

            return sequence
        if isinstance(declaration, factory.Maybe):
            decide = self._compile(name, declaration.decider)
            yes = self._compile(name, declaration.yes)
            no = self._compile(name, declaration.no)
            if declaration.yes is SKIP or declaration.no is SKIP:
                raise self._refuse(name, "Maybe with a skipped branch")
            return lambda draft: yes(draft) if decide(draft) else no(draft)
        if isinstance(declaration, factory.SubFactory):
            return self._needs_parent(name)
        raise self._refuse(name, type(declaration).__name__)

    def _needs_parent(self, name: str) -> Evaluator:
        def missing(_draft: _Draft) -> Any:
            raise FactoryValueError(f"{self.name}.{name}: the seeding engine passes parents in")

        return missing

    def _refuse(self, name: str, kind: str) -> FactoryValueError:
        return FactoryValueError(f"{self.name}.{name}: the seeding engine cannot evaluate {kind}")


def _deep_get(draft: _Draft, path: list[str], default: Any) -> Any:
    head = path[0]
    if head not in draft.__dict__ and head not in draft._maker.evaluators:
        return default  # an unset trait flag: answer without raising AttributeError
    value: Any = draft
    for part in path:
        value = getattr(value, part, _MISSING)
        if value is _MISSING:
            return default
    return value


@functools.cache
def fast_faker(locale: str) -> faker.Faker:
    """A Faker of its own whose weighted draws cache their cumulative weights.

    Faker rebuilds the weights of a table such as en_US's ~7,000 first names on every draw;
    ``random.choices`` with precomputed ``cum_weights`` draws the same element from the same
    random number, so the values are unchanged. It shares Faker's module-level random
    generator, which factory-boy seeds, exactly as factory-boy's own Faker instances do.
    """
    fake = faker.Faker(locale)
    for provider in fake.get_providers():
        provider.random_elements = _cached_weights(provider, provider.random_elements)
    return fake


def _cached_weights(provider: Any, original: Callable[..., Any]) -> Callable[..., Any]:
    cache: dict[int, tuple[OrderedDict[Any, float], tuple[Any, ...], list[float]]] = {}

    def random_elements(
        elements: Any = ("a", "b", "c"),
        length: int | None = None,
        unique: bool = False,
        use_weighting: bool | None = None,
    ) -> Any:
        weighted = use_weighting if use_weighting is not None else provider.__use_weighting__
        if not (isinstance(elements, OrderedDict) and weighted and not unique and length):
            return original(elements, length, unique, use_weighting)
        cached = cache.get(id(elements))
        if cached is None or cached[0] is not elements:
            cached = (elements, tuple(elements), list(accumulate(elements.values())))
            cache[id(elements)] = cached
        return provider.generator.random.choices(cached[1], cum_weights=cached[2], k=length)

    return random_elements
