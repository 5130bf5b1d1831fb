"""Names, emails and phones hold in every locale: order, gender, ASCII emails, uniqueness."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import factory
import faker
import pytest
import sqlalchemy as sa

from invoicegen import db
from invoicegen.factories import IsolatedClientFactory, IsolatedUserFactory, UserFactory
from invoicegen.identities import client_email, draw_phone, romanize, slug, user_email
from invoicegen.seeding import SeedPlan, seed
from invoicegen.settings import CountMix, Shard

AS_OF = dt.date(2026, 4, 30)
LOCALES = ["en_US", "de_DE", "pl_PL", "da_DK", "ja_JP", "zh_CN", "ru_RU", "fr_FR", "pt_BR"]
# An address as applications validate it: ASCII words, a number, a reserved domain.
USER_EMAIL = re.compile(r"[a-z0-9]+(\.[a-z0-9]+)*\.[0-9]+@example\.(com|net|org)")
CLIENT_EMAIL = re.compile(r"[a-z0-9]+(\.[a-z0-9]+)*\.[0-9]+-[0-9]+@[a-z0-9]+(-[a-z0-9]+)*\.example")
# Digits and the separators phone fields accept; no letters, so no "x1975" extensions.
PHONE = re.compile(r"\+?[0-9(][0-9 ()./-]*[0-9]")


def _person_provider(locale: str) -> Any:
    fake = faker.Faker(locale)
    return next(
        p for p in fake.get_providers() if type(p).__module__.startswith("faker.providers.person")
    )


def _seeded(url: str, locale: str, users: int = 60, **options: Any) -> sa.Engine:
    engine = db.make_engine(url)
    seed(
        engine,
        SeedPlan(
            users=users,
            seed=7,
            as_of=AS_OF,
            locale=locale,
            contracts_per_client=CountMix.range(0, 0),
            **options,
        ),
    )
    return engine


def _column(engine: sa.Engine, sql: str) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.exec_driver_sql(sql).scalars())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Preiß", "preiss"),
        ("Łukasz", "lukasz"),
        ("Søren", "soren"),
        ("Hans-Theo Preiß", "hans.theo.preiss"),
        ("Zoë O'Neil", "zoe.oneil"),
        ("王秀英", "wangxiuying"),
        ("Сергей Иванов", "sergey.ivanov"),
        ("山田 太郎", "shantian.tailang"),  # kanji read as pinyin when no reading is known
    ],
)
def test_transliteration_keeps_every_letter(text: str, expected: str) -> None:
    assert slug(text) == expected
    assert romanize(text).isascii()


@pytest.mark.parametrize("name", ["", "!!!", "\u200b", "— … ·", "  "])
def test_an_email_never_has_an_empty_local_part(name: str) -> None:
    assert user_email((name, name), 5) == "user.5@example.org"
    assert client_email((name,), name, "5-1") == "contact.5-1@company.example"


@pytest.mark.parametrize(
    ("company", "domain"),
    [
        ("Smith, O'Neil and Jones", "smith-oneil-and-jones.example"),
        ("Lee-Park  Inc.", "lee-park-inc.example"),
        ("Müller GmbH & Co. KG", "muller-gmbh-co-kg.example"),
        ("株式会社 山田", "zhushihuishe-shantian.example"),
        ("Ωmega Σ", "omega-s.example"),
        ("A" * 70 + " Ltd", "a" * 63 + ".example"),
        ("& -- !", "company.example"),
    ],
)
def test_a_client_email_domain_is_the_company_in_ascii_words(company: str, domain: str) -> None:
    assert client_email(("Ann", "Lee"), company, "5-1") == f"ann.lee.5-1@{domain}"


@pytest.mark.parametrize("locale", LOCALES)
def test_seeded_names_emails_and_phones_hold_in_each_locale(tmp_path: Path, locale: str) -> None:
    engine = _seeded(
        f"sqlite:///{tmp_path / 'people.db'}", locale, clients_per_user=CountMix.range(3, 3)
    )
    users = _column(engine, "SELECT email FROM users")
    clients = _column(engine, "SELECT email FROM clients")
    assert len(users) == 60 and len(clients) == 180
    assert [e for e in users if not USER_EMAIL.fullmatch(e)] == []
    assert [e for e in clients if not CLIENT_EMAIL.fullmatch(e)] == []
    assert len(set(users)) == 60 and len(set(clients)) == 180
    phones = _column(engine, "SELECT phone FROM users")
    assert [p for p in phones if not PHONE.fullmatch(p)] == []
    names = _column(engine, "SELECT name FROM users UNION ALL SELECT name FROM clients")
    assert all(name.strip() for name in names)


@pytest.mark.parametrize("locale", ["en_US", "en_CA", "es_MX", "tr_TR", "fr_FR", "de_DE", "ja_JP"])
def test_phone_numbers_have_no_extension(locale: str) -> None:
    fake = faker.Faker(locale)
    phones = [draw_phone(fake) for _ in range(400)]
    assert [p for p in phones if not PHONE.fullmatch(p)] == []
    assert len(set(phones)) > 350  # still drawn, not one fixed number


def test_japanese_names_are_family_name_first_with_their_own_reading() -> None:
    provider = _person_provider("ja_JP")
    last_names = {pair[0]: pair[2] for pair in provider.last_name_pairs}
    first_names = {pair[0]: pair[2] for pair in provider.first_name_pairs}
    with factory.Faker.override_default_locale("ja_JP"):
        users = IsolatedUserFactory.build_batch(200)
    for user in users:
        last, first = user.name.split(" ")
        assert last in last_names and first in first_names, user.name
        reading = f"{first_names[first]}.{last_names[last]}".lower()
        assert user.email.startswith(f"{reading}."), (user.name, user.email)


def test_chinese_and_hungarian_names_are_family_name_first() -> None:
    chinese = set(_person_provider("zh_CN").last_names)
    with factory.Faker.override_default_locale("zh_CN"):
        names = [c.name for c in IsolatedClientFactory.build_batch(100)]
    assert all(" " not in name and name[0] in chinese for name in names), names[:5]
    hungarian = set(_person_provider("hu_HU").last_names)
    with factory.Faker.override_default_locale("hu_HU"):
        names = [u.name for u in IsolatedUserFactory.build_batch(100)]
    assert all(name.split(" ")[0] in hungarian for name in names), names[:5]


def test_russian_first_and_last_names_agree_in_gender() -> None:
    provider = _person_provider("ru_RU")
    female_first, male_first = set(provider.first_names_female), set(provider.first_names_male)
    female_last, male_last = set(provider.last_names_female), set(provider.last_names_male)
    with factory.Faker.override_default_locale("ru_RU"):
        people = IsolatedUserFactory.build_batch(150) + IsolatedClientFactory.build_batch(150)
    genders = {"female": 0, "male": 0}
    for person in people:
        parts = set(person.name.split(" "))
        if parts & female_first:
            assert parts & female_last and not parts & male_last, person.name
            genders["female"] += 1
        else:
            assert parts & male_first and parts & male_last and not parts & female_last
            genders["male"] += 1
    assert min(genders.values()) > 100, genders
    orders = {person.name.split(" ")[0] in female_last | male_last for person in people}
    assert orders == {True, False}  # both of the locale's orders: family name first or last


def test_an_explicit_name_drives_the_email() -> None:
    assert UserFactory.build(name="Ada Lovelace", clients=0).email.startswith("ada.lovelace.")
    client = IsolatedClientFactory.build(name="Łukasz Preiß", number="9")
    assert client.email.startswith("lukasz.preiss.9@")
    with factory.Faker.override_default_locale("ja_JP"):
        user = IsolatedUserFactory.build(first_name="Ada", last_name="Lovelace")
    assert user.name == "Lovelace Ada"  # the locale's order
    assert user.email.startswith("ada.lovelace.")


@pytest.mark.parametrize("locale", ["ja_JP", "ru_RU"])
def test_names_round_trip_and_emails_are_unique_on_each_database(
    database_url: str, locale: str
) -> None:
    engine = _seeded(database_url, locale, users=40, clients_per_user=CountMix.range(5, 5))
    names = _column(engine, "SELECT name FROM clients")
    emails = _column(engine, "SELECT email FROM clients")
    assert len(emails) == len(set(emails)) == 200
    assert not all(name.isascii() for name in names)  # stored in the locale's own script


@pytest.mark.slow
@pytest.mark.parametrize("locale", ["ja_JP", "en_US"])
def test_emails_are_unique_among_200000_clients_across_shards_and_append(
    tmp_path: Path, locale: str
) -> None:
    url = f"sqlite:///{tmp_path / 'many.db'}"
    per_user = CountMix.range(4, 4)
    for index in (1, 0):  # 45,000 users in two shards, then 5,000 more appended
        _seeded(url, locale, users=45_000, shard=Shard(index, 2), clients_per_user=per_user)
    engine = _seeded(url, locale, users=5_000, append=True)
    counts = _column(
        engine,
        "SELECT COUNT(*) FROM clients UNION ALL SELECT COUNT(DISTINCT email) FROM clients "
        "UNION ALL SELECT COUNT(DISTINCT name) FROM clients "
        "UNION ALL SELECT COUNT(DISTINCT email) FROM users",
    )
    assert counts[:2] == [200_000, 200_000]
    assert counts[2] < 200_000  # names repeat; their emails do not
    assert counts[3] == 50_000
