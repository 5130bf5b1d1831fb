"""A run against the dataset already there: a new dataset, an append, a shard, and what the
dataset's first run recorded (its options and the versions that made it).

:func:`reconcile` refuses a run that would mix datasets, and fills the options a request left
unset from the dataset (or, for a new dataset, from the defaults).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from invoicegen import manifest
from invoicegen.errors import RefusedError, UsageError
from invoicegen.seeding.plan import (
    SHAPES,
    SHAPING_DEFAULTS,
    Plan,
    SeedPlan,
    default_since,
    resolved,
)
from invoicegen.settings import CountMix, Shard


@dataclass(frozen=True)
class Target:
    """Where a run writes: its resolved plan and user positions."""

    plan: Plan
    positions: range
    #: With ``force``: the versions that differ from the dataset's ("faker 40.1 (dataset: 30.0)")
    version_differences: tuple[str, ...] = ()


def reconcile(
    request: SeedPlan, runs: list[manifest.RunRecord], users_in_db: int, where: str
) -> Target:
    """Check the run against the dataset already there; fill unset options from it."""
    identity = next((r for r in runs if r.users_done > 0 or r.status == "running"), None)
    if identity is None or (not request.append and request.shard is None):
        return _new(request, users_in_db, where)
    options = identity.options if isinstance(identity.options, dict) else {}
    recorded = _recorded(identity.id, options, force=request.force)
    have = {"seed": identity.seed, "as_of": identity.as_of, **recorded}
    have["since"] = _recorded_since(options, identity.as_of)
    wanted = {"seed": request.seed, "as_of": request.as_of, "since": request.since}
    wanted.update(request.shaping())
    differences = [
        f"{key} {wanted[key]} (dataset: {have[key]})"
        for key in wanted
        if wanted[key] is not None and wanted[key] != have[key]
    ]
    if isinstance(identity.options, dict) and options.get("shapes") != SHAPES:
        made = options.get("shapes", "per user, by an earlier invoicegen")
        differences.append(f"tree shapes drawn in {SHAPES} (dataset: {made})")
    plan = resolved(request, **have)
    versions = _version_differences(identity)
    if request.shard is not None:
        positions = _shard_positions(request.shard, request.users, options, runs, differences)
        differences = versions
    else:
        differences += versions
        positions = _appended_positions(request, runs, users_in_db, where)
    if differences and not request.force:
        raise RefusedError(
            f"the dataset was made differently: {'; '.join(differences)}; "
            "use the same options, or --force to add to it anyway"
        )
    return Target(plan, positions, tuple(versions))


def _new(request: SeedPlan, users_in_db: int, where: str) -> Target:
    """A new dataset: only into an empty one; unset options take the defaults."""
    if users_in_db:
        raise RefusedError(
            f"{where} already holds an invoicegen dataset ({users_in_db:,} users); add to it "
            "with `invoicegen seed --append`, or drop it with `invoicegen reset`"
        )
    as_of = request.as_of or dt.date.today()
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    plan = resolved(request, seed=seed, as_of=as_of, since=default_since(as_of), **SHAPING_DEFAULTS)
    if plan.shard is None:
        return Target(plan, range(plan.users))
    return Target(plan, plan.shard.positions(plan.users))


def _shard_positions(
    shard: Shard,
    users: int,
    options: dict[str, Any],
    runs: list[manifest.RunRecord],
    differences: list[str],
) -> range:
    """A shard's slice, when it matches the dataset and no other run wrote it."""
    if options.get("shards") not in (None, shard.count) or (
        options.get("users_total") not in (None, users)
    ):
        differences = differences + [
            f"--users {users} --shard {shard} (dataset: "
            f"{options.get('users_total')} users in {options.get('shards')} shards)"
        ]
    if differences:  # ids of a shard follow from these: --force cannot mix them
        raise RefusedError(f"this shard does not match the dataset: {'; '.join(differences)}")
    positions = shard.positions(users)
    for run in runs:
        overlap = range(
            max(run.first_user, positions.start), min(run.positions.stop, positions.stop)
        )
        if len(overlap) and (run.users_done or run.status == "running"):
            raise RefusedError(
                f"users {positions.start + 1:,}–{positions.stop:,} (shard {shard}) were "
                f"already seeded by run {run.id} ({run.status}); nothing written"
            )
    return positions


def _appended_positions(
    request: SeedPlan, runs: list[manifest.RunRecord], users_in_db: int, where: str
) -> range:
    """The users after the dataset's last, when its runs left no gap."""
    done = sum(run.users_done for run in runs)
    start = max(run.first_user + run.users_done for run in runs)
    if done != start or users_in_db != start:
        raise RefusedError(
            f"the dataset in {where} has gaps ({users_in_db:,} users, runs cover {start:,}); "
            "finish its shards before appending"
        )
    return range(start, start + request.users)


def _version_differences(identity: manifest.RunRecord) -> list[str]:
    current = manifest.versions()
    made_with = identity.versions if isinstance(identity.versions, dict) else {}
    return [
        f"{name} {current.get(name)} (dataset: {made_with.get(name, 'unknown')})"
        for name in current
        if current.get(name) != made_with.get(name)
    ]


def _recorded_since(options: dict[str, Any], as_of: dt.date) -> dt.date:
    """The dataset's --since; a run recorded before the option existed used the default."""
    try:
        return dt.date.fromisoformat(str(options["since"]))
    except (KeyError, ValueError):
        return default_since(as_of)


def _recorded(run_id: int, options: dict[str, Any], *, force: bool) -> dict[str, Any]:
    """The shaping options the dataset's first run recorded; unreadable ones are refused,
    or with ``force`` taken as the defaults."""
    recorded: dict[str, Any] = {}
    for key, default in SHAPING_DEFAULTS.items():
        try:
            value = options[key]
            recorded[key] = CountMix.parse(value) if key != "locale" else str(value)
        except (KeyError, UsageError):
            if not force:
                raise RefusedError(
                    f"run {run_id} of the manifest does not record {key} in a form this "
                    "invoicegen reads; --force takes the default, `invoicegen reset` starts over"
                ) from None
            recorded[key] = default
    return recorded


def recorded_options(plan: Plan) -> dict[str, Any]:
    """The options a run records in the manifest: what a later run must match."""
    options: dict[str, Any] = {k: str(v) for k, v in plan.shaping().items()}
    options["since"] = plan.since.isoformat()
    options["shapes"] = SHAPES  # the ids of a shard follow from how the shapes are drawn
    if plan.shard is not None:
        options.update(shards=plan.shard.count, users_total=plan.users)
    return options
