"""Faker's table-driven providers compiled, once per locale, into samplers that draw exactly
what Faker draws.

A provider such as ``company()`` picks a format (``"{{last_name}} {{company_suffix}}"``),
then parses it with a regular expression and dispatches each ``{{token}}`` by name;
``numerify("###-###-####")`` runs five regular-expression passes and a Python ``randint``
(``randint`` -> ``randrange`` -> ``_randbelow``) per digit. Their tables (names, suffixes,
formats, weights) do not change between calls, so this module reads them once and builds
closures that consume the same random numbers in the same order: a weighted table is a
``bisect`` over its cumulative weights (what ``random.choices`` does), a uniform one the
``getrandbits`` loop of ``Random._randbelow``, a format a ``%`` template over compiled
tokens, a phone format its digits drawn class by class in numerify's order. The values are
therefore Faker's own, bit for bit (``tests/test_compiled.py`` compares them, and the random
state after them, over many seeds and locales); anything a rule does not recognise (a
method a locale overrides, an argument group in a format, a plain ``dict``) stays Faker's
own bound method.

:func:`compile_faker` patches one private Faker instance (the seeding engine's, see
``generate.fast_faker``): the providers' and the generator's attributes, so ``fake.company()``,
a ``{{last_name}}`` token and :mod:`invoicegen.identities`' name and phone draws all use the
compiled samplers.
"""

from __future__ import annotations

import _random
import bisect
import random
from collections import OrderedDict
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Any

from faker.generator import _re_token as FAKER_TOKEN
from faker.providers import BaseProvider
from faker.providers.company import Provider as CompanyProvider
from faker.providers.person import Provider as PersonProvider
from faker.providers.person.ja_JP import Provider as JapanesePersonProvider
from faker.providers.phone_number import Provider as PhoneProvider

from invoicegen.identities import MAP_DRAW

Sampler = Callable[[], Any]
_seed = _random.Random.seed  # the C seeding under random.Random.seed's checks

#: The provider methods compiled when a locale does not override them.
COMPILED = (
    "first_name",
    "last_name",
    "first_name_male",
    "first_name_female",
    "first_name_nonbinary",
    "last_name_male",
    "last_name_female",
    "last_name_nonbinary",
    "first_name_male_pair",
    "first_name_female_pair",
    "last_name_pair",
    "company",
    "company_suffix",
    "catch_phrase",
    "phone_number",
)
_PLACEHOLDERS = "#%$!@"  # numerify's, in the order it replaces them
_DIGITS = "0123456789"
#: Each placeholder's draw: (range, its bit length, first digit, may be empty), as Faker's
#: random_digit (#), random_digit_not_null (%), random_digit_above_two ($),
#: random_digit_or_empty (!) and random_digit_not_null_or_empty (@) draw it.
_SLOT_DRAWS = {
    "#": (10, 4, 0, False),
    "%": (9, 4, 1, False),
    "$": (8, 4, 2, False),
    "!": (10, 4, 0, True),
    "@": (9, 4, 1, True),
}
_NUMERIFY_CACHE = 4096  # distinct texts a compiled numerify keeps


def _inline_randbelow_matches() -> bool:
    """Whether ``Random._randbelow(n)`` is the ``getrandbits(n.bit_length())`` loop inlined
    below (and ``randint(0, 9)`` is ``_randbelow(10)``), on this Python."""
    for n in (1, 2, 3, 9, 10, 1000, 7031):
        reference, inline = random.Random(n), random.Random(n)
        expected = [reference._randbelow(n) for _ in range(64)]  # type: ignore[attr-defined]
        if n == 10:
            expected += [reference.randint(0, 9) for _ in range(64)]
        drawn = [_randbelow_loop(inline, n) for _ in range(64 * (2 if n == 10 else 1))]
        if drawn != expected or reference.getstate() != inline.getstate():
            return False
    return True


def _randbelow_loop(rand: random.Random, n: int) -> int:
    k = n.bit_length()
    r = rand.getrandbits(k)
    while r >= n:
        r = rand.getrandbits(k)
    return r


INLINE_RANDBELOW = _inline_randbelow_matches()


class FastRandom(random.Random):
    """A ``random.Random`` whose ``randint`` and ``choice`` give the same values from the same
    state, in one Python call instead of three or four (``randint`` -> ``randrange`` ->
    ``_randbelow``). The seeding engine draws with it as factory-boy's generator while it
    generates a batch (:func:`invoicegen.seeding.generate.generate_batch`)."""

    def reseed(self, key: int) -> None:
        """``seed(key)`` for a non-negative int ``key``: the same state, without ``seed``'s
        Python-level checks of the key's type (a tenth of the cost of seeding)."""
        _seed(self, key)
        self.gauss_next = None  # as seed() does

    if INLINE_RANDBELOW:

        def randint(self, a: int, b: int) -> int:
            n = b - a + 1
            if n <= 0 or type(a) is not int or type(b) is not int:
                return super().randint(a, b)  # the error, or the unusual argument, as Python
            k = n.bit_length()
            r = self.getrandbits(k)
            while r >= n:
                r = self.getrandbits(k)
            return a + r

        def choice(self, seq: Sequence[Any]) -> Any:  # type: ignore[override]
            n = len(seq)
            if not n:
                return super().choice(seq)  # IndexError, as Python
            k = n.bit_length()
            r = self.getrandbits(k)
            while r >= n:
                r = self.getrandbits(k)
            return seq[r]


class Compiler:
    """Compiles one Faker generator's providers; samplers of a table are made once."""

    def __init__(self, rand: random.Random) -> None:
        self.rand = rand
        # id(table) -> (the table, kept alive so the id stays its own; its cumulative weights)
        self._cumulative: dict[int, tuple[Any, list[float]]] = {}
        # a table's draw -> (the table, whether weighted, its values)
        self._tables: dict[Sampler, tuple[Any, bool, tuple[Any, ...]]] = {}
        self._bound: dict[tuple[Any, str], Sampler] = {}
        self._rules: dict[Any, Callable[[Any], Sampler | None]] = {
            PersonProvider.first_name: lambda p: self.element(p, p.first_names),
            PersonProvider.last_name: lambda p: self.element(p, p.last_names),
            PersonProvider.first_name_male: lambda p: self._gendered(p, "first_name", "male"),
            PersonProvider.first_name_female: lambda p: self._gendered(p, "first_name", "female"),
            PersonProvider.first_name_nonbinary: lambda p: self._gendered(
                p, "first_name", "nonbinary"
            ),
            PersonProvider.last_name_male: lambda p: self._gendered(p, "last_name", "male"),
            PersonProvider.last_name_female: lambda p: self._gendered(p, "last_name", "female"),
            PersonProvider.last_name_nonbinary: lambda p: self._gendered(
                p, "last_name", "nonbinary"
            ),
            JapanesePersonProvider.first_name_male_pair: lambda p: self.element(
                p, p.first_name_male_pairs
            ),
            JapanesePersonProvider.first_name_female_pair: lambda p: self.element(
                p, p.first_name_female_pairs
            ),
            JapanesePersonProvider.last_name_pair: lambda p: self.element(p, p.last_name_pairs),
            CompanyProvider.company: self._company,
            CompanyProvider.company_suffix: lambda p: self.element(p, p.company_suffixes),
            CompanyProvider.catch_phrase: self._catch_phrase,
            PhoneProvider.phone_number: self._phone_number,
        }

    # --- what a provider method becomes ---------------------------------------------------------

    def bound(self, method: Any) -> Sampler:
        """A compiled sampler for a provider's bound ``method``, or ``method`` itself."""
        provider, function = getattr(method, "__self__", None), getattr(method, "__func__", None)
        rule = self._rules.get(function)
        if rule is None or not isinstance(provider, BaseProvider):
            return method  # type: ignore[no-any-return]
        key = (provider, function.__name__)  # type: ignore[union-attr]
        if key not in self._bound:
            self._bound[key] = rule(provider) or method
        return self._bound[key]

    def formatter(self, generator: Any, name: str) -> Sampler:
        """What ``{{name}}`` in a format calls, compiled."""
        return self.bound(getattr(generator, name))

    def _gendered(self, provider: Any, kind: str, gender: str) -> Sampler | None:
        table = f"{kind}s_{gender}"
        if hasattr(provider, table):
            return self.element(provider, getattr(provider, table))
        return self.bound(getattr(provider, kind))  # Faker falls back to the plain method

    def _company(self, provider: Any) -> Sampler | None:
        parse = self.parse_format
        return self.element(provider, provider.formats, lambda f: parse(provider.generator, f))

    def _catch_phrase(self, provider: Any) -> Sampler | None:
        tables = provider.catch_phrase_words
        words = [self.element(provider, table) for table in tables]
        if any(w is None for w in words):
            return None
        if INLINE_RANDBELOW and all(isinstance(t, tuple | list | str) for t in tables):
            return self._uniform_words(tables)  # one word of each, uniform: the common case
        samplers: list[Sampler] = [w for w in words if w is not None]
        return lambda: " ".join([draw() for draw in samplers])

    def _uniform_words(self, tables: Sequence[Sequence[str]]) -> Sampler:
        """One word of each of ``tables``, uniformly drawn (``_randbelow`` inlined, as
        :meth:`below` does), joined by spaces: one call, not three per word."""
        getrandbits = self.rand.getrandbits
        steps = tuple((tuple(t), len(t), len(t).bit_length()) for t in tables)

        def words() -> str:
            drawn = []
            for table, n, k in steps:
                r = getrandbits(k)
                while r >= n:
                    r = getrandbits(k)
                drawn.append(table[r])
            return " ".join(drawn)

        return words

    def _phone_number(self, provider: Any) -> Sampler | None:
        if type(provider).numerify is not BaseProvider.numerify:
            return None
        return self.element(provider, provider.formats, self.numerify)

    # --- the building blocks --------------------------------------------------------------------

    def element(
        self,
        provider: Any,
        elements: Any,
        then: Callable[[Any], Sampler] | None = None,
    ) -> Sampler | None:
        """What ``provider.random_element(elements)`` draws; with ``then``, each element
        mapped through it once and the result called. None for what Faker would refuse."""
        if type(provider).random_element is not BaseProvider.random_element:
            return None
        weighted = getattr(provider, "__use_weighting__", True)
        if isinstance(elements, dict):
            if not isinstance(elements, OrderedDict):
                return None  # Faker raises for a plain dict
            keys: Sequence[Any] = tuple(elements)
        elif isinstance(elements, tuple | list | str):
            keys, weighted = elements, False
        else:
            return None
        if not keys:
            return None
        values: tuple[Any, ...] = tuple(then(key) for key in keys) if then else tuple(keys)
        draw = self._weighted(elements, values) if weighted else self.uniform(values)
        if then:
            return lambda: draw()()
        self._tables[draw] = (elements, weighted, values)
        return draw

    def map_draw(self, draw: Sampler, function: Callable[[Any], Any]) -> Sampler | None:
        """``function(draw())`` in one call, from the same random numbers, for a ``draw``
        :meth:`element` made (its table's entries mapped once); None for another one."""
        table = self._tables.get(draw)
        if table is None:
            return None
        elements, weighted, values = table
        mapped = tuple(map(function, values))
        return self._weighted(elements, mapped) if weighted else self.uniform(mapped)

    def _weighted(self, elements: Any, values: Sequence[Any]) -> Sampler:
        """One of ``values`` (``elements``' keys, or what they map to) by ``elements``'
        weights, as ``random.choices`` draws it: the index draw and the lookup in one call."""
        cached = self._cumulative.get(id(elements))
        if cached is None or cached[0] is not elements:
            cached = self._cumulative[id(elements)] = (
                elements,
                list(accumulate(elements.values())),
            )
        cum = cached[1]
        total, hi, draw = cum[-1] + 0.0, len(cum) - 1, self.rand.random
        bisect_right = bisect.bisect_right

        def weighted() -> Any:
            return values[bisect_right(cum, draw() * total, 0, hi)]

        return weighted

    def uniform(self, values: Sequence[Any]) -> Sampler:
        """One of ``values``, as ``random.choice`` draws it (``_randbelow`` inlined, as
        :meth:`below` does): the index draw and the lookup in one call."""
        n = len(values)
        if not INLINE_RANDBELOW:
            randbelow = self.rand._randbelow  # type: ignore[attr-defined]
            return lambda: values[randbelow(n)]
        k, getrandbits = n.bit_length(), self.rand.getrandbits

        def uniform() -> Any:
            r = getrandbits(k)
            while r >= n:
                r = getrandbits(k)
            return values[r]

        return uniform

    def below(self, n: int) -> Callable[[], int]:
        """``Random._randbelow(n)``, inlined when this Python's is the getrandbits loop."""
        rand = self.rand
        if not INLINE_RANDBELOW:
            randbelow = rand._randbelow  # type: ignore[attr-defined]
            return lambda: randbelow(n)
        k, getrandbits = n.bit_length(), rand.getrandbits

        def draw() -> int:
            r = getrandbits(k)
            while r >= n:
                r = getrandbits(k)
            return r

        return draw

    def parse_format(self, generator: Any, text: str) -> Sampler:
        """``generator.parse(text)``: literal text with each ``{{token}}`` compiled."""
        tokens: list[Sampler] = []
        template, position = [], 0
        for match in FAKER_TOKEN.finditer(text):
            if match.group(2):  # an argument group: Faker's own parse
                return lambda: generator.parse(text)
            template.append(text[position : match.start()].replace("%", "%%"))
            template.append("%s")
            tokens.append(self.formatter(generator, match.group(1)))
            position = match.end()
        if not tokens:
            return lambda: text
        template.append(text[position:].replace("%", "%%"))
        pattern = "".join(template)
        if len(tokens) == 1:  # most formats have one to three tokens: no list built per call
            (first,) = tokens
            return lambda: pattern % (first(),)
        if len(tokens) == 2:
            first, second = tokens
            return lambda: pattern % (first(), second())
        if len(tokens) == 3:
            first, second, third = tokens
            return lambda: pattern % (first(), second(), third())
        return lambda: pattern % tuple([token() for token in tokens])

    def numerify(self, text: str) -> Sampler:
        """``numerify(text)``: every ``#``, then every ``%``, ``$``, ``!``, ``@``, as Faker
        replaces them, from the same random numbers."""
        slots = [c for c in text if c in _PLACEHOLDERS]
        if not slots:
            return lambda: text
        pattern = "".join("%s" if c in _PLACEHOLDERS else c for c in text)
        below10 = self.below(10)
        if all(c == "#" for c in slots):
            count = len(slots)
            if INLINE_RANDBELOW:
                getrandbits = self.rand.getrandbits

                def digits() -> str:
                    drawn = []
                    for _ in range(count):
                        r = getrandbits(4)
                        while r >= 10:
                            r = getrandbits(4)
                        drawn.append(_DIGITS[r])
                    return pattern % tuple(drawn)

                return digits
            return lambda: pattern % tuple([_DIGITS[below10()] for _ in range(count)])
        order = sorted(range(len(slots)), key=lambda i: (_PLACEHOLDERS.index(slots[i]), i))
        if INLINE_RANDBELOW:
            return self._mixed_inline(pattern, [(i, *_SLOT_DRAWS[slots[i]]) for i in order])
        below9, below8, below2 = self.below(9), self.below(8), self.below(2)
        draws: dict[str, Callable[[], str]] = {
            "#": lambda: _DIGITS[below10()],
            "%": lambda: _DIGITS[1 + below9()],
            "$": lambda: _DIGITS[2 + below8()],
            "!": lambda: _DIGITS[below10()] if below2() else "",
            "@": lambda: _DIGITS[1 + below9()] if below2() else "",
        }
        steps = [(i, draws[slots[i]]) for i in order]

        def mixed() -> str:
            drawn = [""] * len(slots)
            for i, draw in steps:
                drawn[i] = draw()
            return pattern % tuple(drawn)

        return mixed

    def _mixed_inline(self, pattern: str, steps: list[tuple[int, int, int, int, bool]]) -> Sampler:
        """:meth:`numerify`'s mixed placeholders with ``_randbelow`` inlined: per slot (in
        numerify's order) its index, range, bits, first digit and whether it may be empty."""
        getrandbits, size = self.rand.getrandbits, len(steps)

        def mixed() -> str:
            drawn = [""] * size
            for i, n, k, offset, optional in steps:
                if optional:  # random_digit_or_empty: randint(0, 1) first
                    r = getrandbits(2)
                    while r >= 2:
                        r = getrandbits(2)
                    if not r:
                        continue
                r = getrandbits(k)
                while r >= n:
                    r = getrandbits(k)
                drawn[i] = _DIGITS[offset + r]
            return pattern % tuple(drawn)

        return mixed

    def numerify_method(self) -> Callable[..., str]:
        """A drop-in ``numerify(text="###")`` that compiles each text once."""
        cache: dict[str, Sampler] = {}

        def numerify(text: str = "###") -> str:
            sampler = cache.get(text)
            if sampler is None:
                if len(cache) >= _NUMERIFY_CACHE:
                    cache.clear()
                sampler = cache[text] = self.numerify(text)
            return sampler()  # type: ignore[no-any-return]

        return numerify


def compile_faker(fake: Any) -> Any:
    """Patch ``fake`` (a single-locale Faker of its own) so its table-driven providers draw
    through compiled samplers; returns it. Only methods a locale does not override change."""
    providers = fake.get_providers()
    generator = providers[0].generator
    compiler = Compiler(generator.random)
    for provider in providers:
        if type(provider).numerify is BaseProvider.numerify:
            provider.numerify = compiler.numerify_method()
        for name in COMPILED:
            method = getattr(provider, name, None)
            if method is not None:
                compiled = compiler.bound(method)
                if compiled is not method:
                    setattr(provider, name, compiled)
    for name in COMPILED:
        method = getattr(generator, name, None)
        if method is not None:
            setattr(generator, name, compiler.bound(method))
    setattr(generator, MAP_DRAW, compiler.map_draw)  # identities' names, read once
    return fake
