"""Check an output against its commit records: every file, and the catalog against the store.

``verify_output`` is what ``saldata verify`` prints and what a resume uses to find the shards
it must redo. A shard is damaged when a file its record names is missing, has another size or
checksum, exists where the record says it must not, or when its catalog rows disagree with the
store (images.n_tokens, the tokens and words rows, the stored token ids, image_id and
token_mask) or with each other (an image's fixations rows against its images.n_fixations).

A file written with the store and never again belongs to no shard. Its metadata files are checked
first, against the store record (``storage/store_record.py``), since every later read goes
through them; the ``layer`` array's chunk against the root attributes it was written from. A
damaged one stops the check with one line naming it, as a corrupt ``zarr.json`` does.

The object tables (``saldata objects``) belong to no shard either: their files are checked
against their own record, ``commits/objects.json`` (``objects/checks.py``).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from saldata.schemas.catalog import FIXATIONS, IMAGES, TABLES, TOKENS, WORDS
from saldata.schemas.store import TOKEN_PAD
from saldata.storage.catalog import catalog_dir, read_file, shard_file, shard_relpath
from saldata.storage.commits import CommitRecord, digest_file, read_commit_log
from saldata.storage.location import as_out
from saldata.storage.store_record import RECORDED_SINCE, check_metadata
from saldata.storage.zarr_store import creation_array_problems, open_store, store_schema_version

VERIFIABLE_SINCE = 5  # the oldest store schema_version whose records verify knows how to check


@dataclass(slots=True)
class VerifyReport:
    out: Path
    checked: int = 0  # committed shards checked
    damaged: dict[int, list[str]] = field(default_factory=dict)  # shard -> what is wrong
    pending: list[int] = field(default_factory=list)  # commits a killed run left half done
    stray: list[str] = field(default_factory=list)  # catalog files no record names
    metadata_checked: bool = True  # False for an output older than the store record: nothing to check against
    objects: list[str] = field(default_factory=list)  # what is wrong with the object tables (saldata objects)

    @property
    def intact(self) -> bool:
        return not (self.damaged or self.pending or self.stray or self.objects)


def verify_output(out: Path, quick: bool = False) -> VerifyReport:
    """Every committed shard checked; ``quick`` checks presence and sizes only."""
    from saldata.errors import NotAnOutputError, StoreError

    out = as_out(out)
    check_metadata(out)  # first: every later read goes through the metadata
    version = store_schema_version(out)
    if version is None:
        raise NotAnOutputError(f"No feature store at {out / 'features.zarr'}: is {out} a saldata extraction output?")
    if version < VERIFIABLE_SINCE:
        raise StoreError(
            f"{out} was written by an older saldata (store schema_version {version}) that kept no commit "
            "records, so it cannot be verified; re-extract it with --overwrite to get a verifiable output."
        )
    log = read_commit_log(out)
    group = open_store(out)
    problems = creation_array_problems(out, group)
    if problems:
        raise StoreError(f"{problems[0]}; write it back with zarr, or re-extract with --overwrite.")
    report = VerifyReport(
        out, checked=len(log.committed), pending=sorted(log.pending), metadata_checked=version >= RECORDED_SINCE
    )
    for shard, why in log.unreadable.items():
        report.damaged[shard] = [why]
    expected_digest = group.attrs.get("config_digest")
    for shard, record in sorted(log.committed.items()):
        problems = check_files(out, record, quick)
        if record.config_digest != expected_digest:
            problems.append(f"its record was made by another run configuration ({record.config_digest})")
        if not quick and not problems:
            try:
                problems += check_rows(out, group, record)
            except (StoreError, ValueError, OSError) as exc:  # a chunk that fails its own checksum
                problems.append(f"cannot be read back ({type(exc).__name__}: {exc})")
        if problems:
            report.damaged[shard] = problems
    named = {rel for record in [*log.committed.values(), *log.pending.values()] for rel in record.files}
    named |= {shard_relpath(TABLES[name], shard) for shard in log.unreadable for name in TABLES}  # damaged above
    report.stray = sorted(
        str(p.relative_to(out))
        for name in TABLES
        for p in (catalog_dir(out) / name).glob("*")
        if str(p.relative_to(out)) not in named
    )
    _check_objects(out, report, log, quick)
    return report


def _check_objects(out: Path, report: VerifyReport, log, quick: bool) -> None:
    """The object tables (``saldata objects``): their own record, not a shard's."""
    from saldata.errors import DamageError
    from saldata.objects.checks import object_problems
    from saldata.objects.table import read_objects_record, unnamed_files

    committed = {i for record in log.committed.values() for i in range(record.start, record.stop)}
    report.objects = object_problems(out, committed, quick)
    # an unreadable record is in report.objects already; the files it would have named are not stray
    with contextlib.suppress(DamageError):
        report.stray = sorted(report.stray + unnamed_files(out, read_objects_record(out)))


def check_files(out: Path, record: CommitRecord, quick: bool) -> list[str]:
    problems = []
    for rel, want in sorted(record.files.items()):
        path = out / rel
        if want is None:
            if path.exists():
                problems.append(f"{rel}: exists, but the commit says this shard wrote no such file")
            continue
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif path.stat().st_size != want.size:
            problems.append(f"{rel}: {path.stat().st_size} bytes, committed with {want.size}")
        elif not quick and digest_file(path).crc32c != want.crc32c:
            problems.append(f"{rel}: checksum differs from the committed one (the file was changed)")
    return problems


def check_rows(out: Path, group, record: CommitRecord) -> list[str]:
    """The shard's catalog rows against its records and the store's n_tokens and token_ids.

    A table the record names no file of (a shard committed before the catalog had it) has no rows.
    """
    tables = {
        name: read_file(shard_file(out, table, record.shard), table).to_pylist()
        if shard_relpath(table, record.shard) in record.files
        else []
        for name, table in TABLES.items()
    }
    problems = [
        f"{name}: {len(rows)} rows, committed with {record.counts[name]}"
        for name, rows in tables.items()
        if name in record.counts and len(rows) != record.counts[name]
    ]
    images = tables[IMAGES.name]
    if sorted(r["idx"] for r in images) != list(range(record.start, record.stop)):
        problems.append(f"images: rows are not exactly images {record.start}..{record.stop - 1}")
        return problems
    n_stored = group["n_tokens"][record.start : record.stop]
    ids_stored = group["token_ids"][record.start : record.stop]
    # absent from stores written before them (None): nothing to check
    image_ids = group["image_id"][record.start : record.stop] if "image_id" in group else None
    masks = group["token_mask"][record.start : record.stop] if "token_mask" in group else None
    tokens_of: dict[int, list[int]] = {}
    for row in sorted(tables[TOKENS.name], key=lambda r: (r["idx"], r["position"])):
        tokens_of.setdefault(row["idx"], []).append(row["token_id"])
    n_of = {r["idx"]: r["n_tokens"] for r in images}
    words_past_end = Counter(w["idx"] for w in tables[WORDS.name] if w["last_position"] >= n_of.get(w["idx"], 0))
    fixations_of = Counter(f["idx"] for f in tables[FIXATIONS.name])
    has_fixations = shard_relpath(FIXATIONS, record.shard) in record.files
    for row in images:
        i, n = row["idx"], row["n_tokens"]
        if int(n_stored[i - record.start]) != n:
            problems.append(f"image {i}: n_tokens {n} in the catalog, {int(n_stored[i - record.start])} in the store")
        elif tokens_of.get(i, []) != [int(t) for t in ids_stored[i - record.start, :n]]:
            problems.append(f"image {i}: the tokens table disagrees with the store's token_ids")
        elif (eos_problem := _eos_row_problem(row, ids_stored[i - record.start])) is not None:
            problems.append(f"image {i}: {eos_problem}")
        elif masks is not None and masks[i - record.start].tolist() != _token_mask(row, masks.shape[1]):
            problems.append(f"image {i}: token_mask disagrees with n_tokens {n} and ended_with_eos")
        if image_ids is not None and str(image_ids[i - record.start]) != row["image_id"]:
            problems.append(
                f"image {i}: image_id {row['image_id']!r} in the catalog, {str(image_ids[i - record.start])!r} in the store"
            )
        if words_past_end.get(i):
            problems.append(f"image {i}: {words_past_end[i]} words point past its {n} tokens")
        if has_fixations and fixations_of.get(i, 0) != (row["n_fixations"] or 0):
            problems.append(f"image {i}: {fixations_of.get(i, 0)} fixations rows, n_fixations {row['n_fixations']}")
    return problems


def _token_mask(row: dict, max_tokens: int) -> list[bool]:
    """The rows of an image that hold data: its tokens, then the EOS step where generation ended with it."""
    rows = row["n_tokens"] + bool(row.get("ended_with_eos"))
    return [t < rows for t in range(max_tokens)]


def _eos_row_problem(row: dict, token_ids) -> str | None:
    """Row n_tokens holds the EOS step exactly when the catalog says generation ended with EOS."""
    n, ended = row["n_tokens"], row.get("ended_with_eos")
    if ended is None or n >= len(token_ids):
        return None
    stored = int(token_ids[n])
    if ended and stored == TOKEN_PAD:
        return f"ended_with_eos, but token_ids row {n} (the EOS step) is padding"
    if not ended and stored != TOKEN_PAD:
        return f"token_ids row {n} holds {stored} past n_tokens, but ended_with_eos is false"
    return None
