"""People's names, emails and phone numbers that hold in every Faker locale.

* Names come in the locale's own order and separator (``山田 太郎``, ``王秀英``, ``Nagy Péter``,
  ``John Smith``), read from the locale's name formats once, and first and last name agree in
  gender (Russian ``Анна Иванова``, never ``Анна Иванов``).
* Emails are ASCII: names are transliterated with anyascii (``Preiß`` -> ``preiss``,
  ``Łukasz`` -> ``lukasz``, ``Søren`` -> ``soren``, CJK romanized; Japanese names use Faker's
  own romanized reading of the same name), given name first. The local part is never empty, and
  a number that is unique per user (per client) makes every address unique.
* Phone numbers are the locale's, without the extensions (``x1975``) validation rejects.

The values are drawn through a factory declaration, :class:`FromLocale`, so factory-boy's
``build()`` and the seeding engine's row makers draw the same values from the same random
generator. Everything that does not change per row (formats, orders, weights) is read once
per locale.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from operator import itemgetter
from typing import Any, NamedTuple

import factory
from anyascii import anyascii
from faker.providers.phone_number import Provider as BasePhoneProvider

EMAIL_DOMAINS = ("example.com", "example.net", "example.org")  # reserved: mail never leaves
MAX_LOCAL_WORDS = 40  # characters of the name in an email's local part (RFC 5321 allows 64)
MAX_LABEL = 63  # characters of a domain label

_PLACEHOLDER = re.compile(r"{{\s*(\w+)\s*}}")
# An extension at the end of a phone format or number: "x###", " x1975", " ext. 12".
_EXTENSION = re.compile(r"\s*(?:x|ext\.?|extension)\s*[#%!@$\d]+\s*$", re.IGNORECASE)
_WORDS = re.compile(r"[a-z0-9]+")
#: Words each of romanize() and slug() keeps: a locale's names (pl_PL has ~4,000). Company
#: names' words ("Müller-Schmidt") hardly repeat: a larger cache only grows with the dataset
#: (65,536 of them held ~30 MiB per generating worker).
WORDS_CACHED = 1 << 13
_NAME_PART = re.compile(r"(first|last)_name(?:_(?:male|female|nonbinary))?")


class FromLocale(factory.Faker):  # type: ignore[misc]  # factory-boy is untyped
    """A factory declaration whose value is ``draw(faker)``, with the factory's locale's Faker.

    Like ``factory.Faker("name")``, but for values built from several of a locale's providers
    at once; the seeding engine's row makers call ``draw`` with their own Faker of the locale.
    """

    def __init__(self, draw: Callable[[Any], Any]) -> None:
        super().__init__(draw.__name__)
        self.draw = draw

    def evaluate(self, instance: Any, step: Any, extra: dict[str, Any]) -> Any:
        return self.draw(self._get_faker(extra.pop("locale")))

    def sampler(self, fake: Any) -> Callable[[], Any]:
        """``draw(fake)`` as a call without arguments, what does not change per row (the
        locale's tables) looked up once: the seeding engine's row makers call it per row."""
        bind = _BINDERS.get(self.draw)
        return bind(fake) if bind is not None else functools.partial(self.draw, fake)


# --- transliteration and emails -------------------------------------------------------------------


@functools.lru_cache(maxsize=WORDS_CACHED)  # names repeat: a locale has a few thousand of them
def romanize(text: str) -> str:
    """``text`` in ASCII: 'Hans-Theo Preiß' -> 'Hans-Theo Preiss', '王秀英' -> 'WangXiuYing'."""
    return anyascii(text)


@functools.lru_cache(maxsize=WORDS_CACHED)
def slug(text: str, sep: str = ".") -> str:
    """ASCII, lower-case, words joined by ``sep``: 'Zoë O'Neil' -> 'zoe.oneil'."""
    return sep.join(_WORDS.findall(romanize(text).lower().replace("'", "")))


Words = tuple[str, ...]  # the parts of a name, each read on its own (names repeat: cached)


def _local_part(words: Words, fallback: str) -> str:
    local = ".".join(filter(None, map(slug, words)))[:MAX_LOCAL_WORDS].strip(".")
    return local or fallback


def user_email(words: Words, number: int) -> str:
    """``first.last.<number>@example.com``: unique for distinct ``number`` whatever the names."""
    local = _local_part(words, "user")
    return f"{local}.{number}@{EMAIL_DOMAINS[number % len(EMAIL_DOMAINS)]}"


def client_email(words: Words, company: str, number: int | str) -> str:
    """``first.last.<number>@company-slug.example``: unique for distinct ``number``.

    The seeding engine numbers a client ``<user number>-<client number within the user>``.
    """
    return f"{_local_part(words, 'contact')}.{number}@{_label(company)}.example"


def _label(company: str) -> str:
    if company.isascii():  # romanized already: the words' slugs are the whole name's words
        label = "-".join(_WORDS.findall(company.lower().replace("'", "")))
    else:  # word by word: company names are mostly distinct, their words are not (cache hits)
        label = "-".join(filter(None, (slug(word, "-") for word in company.split())))
    return label[:MAX_LABEL].strip("-") or "company"


# --- names ----------------------------------------------------------------------------------------


class Person(NamedTuple):  # a tuple: made once per row, so cheap to make
    """A drawn person: first and last name of one gender, and how the locale writes them."""

    first_name: str
    last_name: str
    family_first: bool  # the locale writes the last name first (ja_JP, zh_CN, hu_HU)
    separator: str  # between the two names: " ", or "" (zh_CN)
    first_reading: str  # ASCII reading of first_name
    last_reading: str

    def full_name(self, first: str, last: str) -> str:
        """``first`` and ``last`` in this person's locale order."""
        if self.family_first:
            return f"{last}{self.separator}{first}"
        return f"{first}{self.separator}{last}"

    def email_words(self, name: str, first: str, last: str) -> Words:
        """The words of an email for ``name``, given name first.

        A name made of ``first`` and ``last`` reads as them (the drawn ones by their own
        reading); any other name, e.g. one given explicitly, reads as itself.
        """
        if name != self.full_name(first, last):
            return (name,)
        given = self.first_reading if first == self.first_name else first
        family = self.last_reading if last == self.last_name else last
        return given, family


_person = tuple.__new__  # Person(...) without NamedTuple's Python-level __new__: made per row
_Draw = Callable[[], tuple[str, str]]  # a name and its ASCII reading
_Order = tuple[bool, str]  # (family first, separator)


@dataclass(frozen=True)
class _Gender:
    first: _Draw
    last: _Draw
    orders: tuple[_Order, ...]
    cum_weights: tuple[float, ...]


#: A Faker generator's attribute that maps its table draws, where it has one (the seeding
#: engine's compiled Fakers, see ``invoicegen.seeding.compiled``): ``map_draw(draw, function)``
#: is ``function(draw())`` in one call, from the same random numbers, each of the table's
#: entries mapped once; or None for a draw that is not one of its tables'.
MAP_DRAW = "invoicegen_map_draw"


def _mapped(generator: Any, draw: Callable[[], Any], function: Callable[[Any], Any]) -> Any:
    map_draw = getattr(generator, MAP_DRAW, None)
    return map_draw(draw, function) if map_draw is not None else None


def _with_reading(name: str) -> tuple[str, str]:
    return name, romanize(name)


def _own_reading(pair: tuple[str, str, str]) -> tuple[str, str]:
    return pair[0], pair[2]  # Faker ja_JP's (kanji, kana, romaji): its own reading


def _reading(generator: Any, draw: Callable[[], str]) -> _Draw:
    mapped: _Draw | None = _mapped(generator, draw, _with_reading)
    if mapped is not None:  # the names romanized once, not per row
        return mapped

    def named() -> tuple[str, str]:
        return _with_reading(draw())

    return named


def _pair(generator: Any, draw: Callable[[], tuple[str, str, str]]) -> _Draw:
    mapped: _Draw | None = _mapped(generator, draw, _own_reading)
    if mapped is not None:
        return mapped

    def paired() -> tuple[str, str]:
        return _own_reading(draw())

    return paired


def _orders(formats: Any) -> tuple[tuple[_Order, ...], tuple[float, ...]]:
    """The (family first, separator) orders of a locale's name formats, with their weights."""
    weights: dict[_Order, float] = {}
    items = formats.items() if isinstance(formats, dict) else ((f, 1.0) for f in formats)
    for text, weight in items:
        spans: dict[str, tuple[int, int]] = {}
        for match in _PLACEHOLDER.finditer(text):  # the first full first and last name
            part = _NAME_PART.fullmatch(match.group(1))
            if part:
                spans.setdefault(part.group(1), match.span())
        first, last = spans.get("first"), spans.get("last")
        if first is None or last is None:
            continue
        earlier, later = (last, first) if last[0] < first[0] else (first, last)
        between = text[earlier[1] : later[0]]
        order = (last[0] < first[0], between if between.isspace() or not between else " ")
        weights[order] = weights.get(order, 0.0) + float(weight)
    if not weights:
        return ((False, " "),), (1.0,)
    return tuple(weights), tuple(accumulate(weights.values()))


def _person_provider(fake: Any) -> Any:
    return next(p for p in fake.get_providers() if type(p).__module__.startswith(_PERSON))


_PERSON = "faker.providers.person"
_PHONE = "faker.providers.phone_number"


class _Names:
    """A locale's way of drawing a person: read once, drawn per row."""

    def __init__(self, fake: Any) -> None:
        provider = _person_provider(fake)
        self.generator = provider.generator
        generator = self.generator
        genders = []
        for gender in ("male", "female"):
            if hasattr(provider, f"first_name_{gender}_pair"):  # ja_JP
                first = _pair(generator, getattr(provider, f"first_name_{gender}_pair"))
                last = _pair(generator, provider.last_name_pair)
            else:
                first = _reading(generator, getattr(provider, f"first_name_{gender}"))
                last = _reading(generator, getattr(provider, f"last_name_{gender}"))
            formats = getattr(provider, f"formats_{gender}", None) or provider.formats
            genders.append(_Gender(first, last, *_orders(formats)))
        self.male, self.female = genders

    def draw(self) -> Person:
        random = self.generator.random
        gender = self.female if random.random() < 0.5 else self.male
        first, first_reading = gender.first()
        last, last_reading = gender.last()
        orders = gender.orders
        order = (
            orders[0]
            if len(orders) == 1
            else random.choices(orders, cum_weights=gender.cum_weights)[0]
        )
        return _person(Person, (first, last, order[0], order[1], first_reading, last_reading))


@functools.cache
def _names(fake: Any) -> _Names:
    return _Names(fake)


def draw_person(fake: Any) -> Person:
    """A person drawn from ``fake``'s locale: gender first, then both names of that gender."""
    return _names(fake).draw()


# --- phones ---------------------------------------------------------------------------------------


def _phone_draw(fake: Any) -> Callable[[], str]:
    provider = next(p for p in fake.get_providers() if type(p).__module__.startswith(_PHONE))
    formats: Sequence[str] = getattr(provider, "formats", ())
    plain = getattr(type(provider), "phone_number", None) is BasePhoneProvider.phone_number
    if plain and formats and not any("{{" in f for f in formats):
        # Faker's own phone_number(), from the formats without an extension (or, when every
        # format has one, from the formats with their extension cut off).
        kept = tuple(f for f in formats if not _EXTENSION.search(f))
        kept = kept or tuple(_EXTENSION.sub("", f) for f in formats)
        numbers, generator = tuple(map(_digits_drawn, kept)), provider.generator

        def phone() -> str:
            rand = generator.random
            return numbers[int(rand.random() * len(numbers))](rand)

        return phone
    own = fake.phone_number  # the locale's own way (e.g. other providers): cut the result
    return lambda: _EXTENSION.sub("", own())


#: Faker's digit placeholders: # any digit, % not 0, $ 2 to 9, ! any or none, @ not 0 or none.
_DIGIT_SLOTS = {"#": (10, 0, False), "%": (9, 1, False), "$": (8, 2, False),
                "!": (10, 0, True), "@": (9, 1, True)}  # fmt: skip
_DIGITS = "0123456789"
_OCTAL_ABOVE_ONE = str.maketrans("01234567", "23456789")  # an octal digit as a $ digit
_CHUNK = 9  # decimal digits drawn from one random(): 53 bits hold them evenly


def _digits_drawn(text: str) -> Callable[[random.Random], str]:
    """``text`` with each placeholder (:data:`_DIGIT_SLOTS`) a uniformly drawn digit of its
    kind, as Faker's ``numerify`` draws them, in few draws: the ``#`` digits of a number as
    one decimal numeral per nine, its ``$`` digits as one octal numeral shifted up by two."""
    kinds = [c for c in text if c in _DIGIT_SLOTS]
    pattern = "".join("%s" if c in _DIGIT_SLOTS else c for c in text)
    if not kinds:
        return lambda _rand: text
    if set(kinds) <= {"#", "$"}:
        hashes = kinds.count("#")
        chunks = [(f"%0{size}d", 10**size) for size in _sizes(hashes, _CHUNK)]
        octal, bits = f"%0{len(kinds) - hashes}o", 3 * (len(kinds) - hashes)
        literal = "".join(c for c in text if c not in _DIGIT_SLOTS)
        pick = _slices_of(text, hashes, len(kinds))
        if len(chunks) == 1:  # most formats (en_US's eight #): one numeral, no list to join
            ((form, size),) = chunks

            def short_numeral(rand: random.Random) -> str:
                drawn = form % int(rand.random() * size)
                if bits:
                    drawn += (octal % rand.getrandbits(bits)).translate(_OCTAL_ABOVE_ONE)
                return "".join(pick(drawn + literal))

            return short_numeral

        def numeral(rand: random.Random) -> str:
            draw = rand.random
            drawn = "".join([form % int(draw() * size) for form, size in chunks])
            if bits:
                drawn += (octal % rand.getrandbits(bits)).translate(_OCTAL_ABOVE_ONE)
            return "".join(pick(drawn + literal))

        return numeral
    steps = [_DIGIT_SLOTS[kind] for kind in kinds]

    def digit_by_digit(rand: random.Random) -> str:
        draw, drawn = rand.random, []
        for n, first, optional in steps:
            if optional and draw() < 0.5:
                drawn.append("")
            else:
                drawn.append(_DIGITS[first + int(draw() * n)])
        return pattern % tuple(drawn)

    return digit_by_digit


def _slices_of(text: str, hashes: int, slots: int) -> Callable[[str], Any]:
    """The pieces of ``text`` from one string of its ``#`` digits, then its ``$`` digits,
    then its literal characters: runs that follow on in that string are one slice each."""
    where, counters = [], {"#": 0, "$": hashes}
    other = slots
    for c in text:
        if c in counters:
            where.append(counters[c])
            counters[c] += 1
        else:
            where.append(other)
            other += 1
    runs: list[list[int]] = []
    for index in where:
        if runs and runs[-1][1] == index:
            runs[-1][1] += 1
        else:
            runs.append([index, index + 1])
    return itemgetter(*(slice(first, stop) for first, stop in runs))


def _sizes(total: int, most: int) -> list[int]:
    """``total`` cut into parts of at most ``most``: 20, 9 -> [9, 9, 2]."""
    return [most] * (total // most) + [total % most] * bool(total % most)


@functools.cache
def _phones(fake: Any) -> Callable[[], str]:
    return _phone_draw(fake)


def draw_phone(fake: Any) -> str:
    """A phone number in ``fake``'s locale's formats, without an extension."""
    return _phones(fake)()


#: What :meth:`FromLocale.sampler` binds to a Faker once instead of looking up per row.
_BINDERS: dict[Callable[[Any], Any], Callable[[Any], Callable[[], Any]]] = {
    draw_person: lambda fake: _names(fake).draw,
    draw_phone: _phones,
}
