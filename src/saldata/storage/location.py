"""Where an output lives: a local folder (``pathlib.Path``) or an object-store prefix (``ObjectPath``).

Every module that touches OUT takes either. Local paths keep their own code (rename, fsync, hard
links) untouched; ``ObjectPath`` gives the part of pathlib's API saldata uses over any fsspec
URL (``s3://``, ``gs://``, ``az://``, ``memory://``), so most code reads the same for both. What
cannot be the same (a rename, an fsync, an exclusive create) goes through the functions below,
each with one branch per kind of location.

Object stores have no folders: a "folder" is a key prefix, ``mkdir`` does nothing, and a folder
exists while any key lies under it. Listings are never cached (``use_listings_cache=False``):
a commit written by another node must be seen at the next read.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import inspect
import posixpath
import shutil
from pathlib import Path, PurePosixPath

from saldata.errors import ConfigError, first_line

Location = Path  # annotations say ``Path``; an ObjectPath stands in wherever OUT may be a URL


def is_url(text: str) -> bool:
    return "://" in str(text)


def as_out(out, storage_options: dict | None = None):
    """``out`` as a location: an ObjectPath for a URL, a ``Path`` for anything else."""
    if isinstance(out, ObjectPath):
        return out.with_options(storage_options) if storage_options else out
    if str(out).startswith("file://"):
        out = str(out).removeprefix("file://")  # a local folder, spelled as a URL
    elif is_url(str(out)):
        return ObjectPath.from_url(str(out), storage_options or {})
    if storage_options:
        raise ConfigError(f"--storage-option applies to URLs (s3://...); {out} is a local path.")
    return Path(out)


def is_object(path) -> bool:
    return isinstance(path, ObjectPath)


def parse_storage_options(pairs: list[str] | None) -> dict:
    """``KEY=VALUE`` pairs as fsspec options; ``true``/``false``/numbers become those types.

    A dotted key nests (``client_kwargs.region_name=eu-west-1``), as s3fs wants some options.
    """
    options: dict = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--storage-option {pair!r} is not KEY=VALUE (e.g. endpoint_url=http://host:9000).")
        target = options
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = _value(value)
    return options


def check_option_keys(protocol: str, options: dict) -> None:
    """A one-line ConfigError, before any connection, for a key the store's filesystem does not take.

    Left to the client, a misspelled key (``endpoint-url``) surfaces at the first request as
    "cannot be reached (AioSession.__init__() got an unexpected keyword argument ...)".
    """
    known = known_option_keys(protocol)
    unknown = sorted(set(options) - known) if known else []
    if unknown:
        raise ConfigError(
            f"--storage-option {unknown[0]} is not an option of {protocol}:// (known: {', '.join(sorted(known))})."
        )


@functools.cache
def known_option_keys(protocol: str) -> frozenset[str]:
    """The top-level keys ``protocol``'s filesystem takes; empty where they cannot all be listed.

    Read from the signatures, so a new s3fs's options are known without a list here: every named
    parameter of the class's ``__init__`` chain, the listings-cache and instance-cache keys
    fsspec's base takes from its ``**storage_options``, and for s3fs, whose remaining keywords
    go to aiobotocore's session, that session's. Other stores pass their ``**kwargs`` to clients
    saldata does not know, so their keys are left to the filesystem to refuse.
    """
    if protocol not in ("s3", "s3a"):
        return frozenset()
    import fsspec

    try:
        from aiobotocore.session import AioSession

        chain = [
            k.__dict__["__init__"] for k in fsspec.get_filesystem_class(protocol).__mro__ if "__init__" in k.__dict__
        ]
    except ImportError:  # s3fs missing: ObjectPath.fs says so in its own line
        return frozenset()
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    keys = {
        p.name
        for init in [*chain, AioSession.__init__]
        for p in inspect.signature(init).parameters.values()
        if p.kind in named
    }
    return frozenset(
        keys - {"self"} | {"use_listings_cache", "listings_expiry_time", "max_paths", "skip_instance_cache"}
    )


def _value(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_many(paths: list) -> list[bytes | Exception]:
    """The bytes of each path, in order; the exception for one that cannot be read.

    Objects are fetched concurrently (fsspec's ``cat`` of many keys): a catalog of hundreds of
    shards is hundreds of GETs, which one after another would take seconds on a real store."""
    objects = [p for p in paths if is_object(p)]
    fetched: dict = {}
    if objects:
        fs = objects[0].fs
        fetched = fs.cat([p.key for p in objects], on_error="return") if len(objects) > 1 else {}
        fetched = {objects[0]._as_named(key): value for key, value in fetched.items()}
    found = []
    for path in paths:
        try:
            if is_object(path) and path.key in fetched:
                value = fetched[path.key]
                if isinstance(value, Exception):
                    raise value
                found.append(bytes(value))
            else:
                found.append(path.read_bytes())
        except Exception as exc:  # the caller says what an unreadable file means
            found.append(exc)
    return found


class _Stat:
    __slots__ = ("st_size", "st_mtime")

    def __init__(self, size: int, mtime: float):
        self.st_size, self.st_mtime = size, mtime


class ObjectPath:
    """One key (or key prefix) in an fsspec filesystem, with the pathlib API saldata uses.

    It pickles as its URL and options (Ray ships it to workers), and builds its filesystem on
    first use in each process.
    """

    __slots__ = ("protocol", "key", "options", "_fs")

    def __init__(self, protocol: str, key: str, options: dict | None = None):
        self.protocol = protocol
        self.key = key.rstrip("/")
        self.options = dict(options or {})
        self._fs = None

    @classmethod
    def from_url(cls, url: str, options: dict) -> ObjectPath:
        protocol, _, key = url.partition("://")
        if not key.strip("/"):
            raise ConfigError(f"{url} names no bucket; give one, e.g. s3://bucket/prefix.")
        check_option_keys(protocol, options)
        return cls(protocol, key, options)

    def with_options(self, options: dict) -> ObjectPath:
        check_option_keys(self.protocol, options)
        return ObjectPath(self.protocol, self.key, {**self.options, **options})

    def __reduce__(self):
        return ObjectPath, (self.protocol, self.key, self.options)

    @property
    def fs(self):
        if self._fs is None:
            import fsspec

            try:
                # Listings are never cached: another node's commit must show at the next read.
                self._fs = fsspec.filesystem(self.protocol, use_listings_cache=False, **self.options)
            except ImportError as exc:
                raise ConfigError(f"{self}: {first_line(exc).rstrip('.')}.") from None
            except (ValueError, TypeError) as exc:
                raise ConfigError(
                    f"{self}: the storage options are not ones {self.protocol}:// takes ({exc})."
                ) from None
        return self._fs

    # -- names ----------------------------------------------------------------------------

    def __str__(self) -> str:
        return f"{self.protocol}://{self.key}"

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ObjectPath) and (self.protocol, self.key) == (other.protocol, other.key)

    def __hash__(self) -> int:
        return hash((self.protocol, self.key))

    def __lt__(self, other: ObjectPath) -> bool:
        return self.key < other.key

    def __truediv__(self, part) -> ObjectPath:
        return self._child(posixpath.join(self.key, str(part)))

    def joinpath(self, *parts) -> ObjectPath:
        return self._child(posixpath.join(self.key, *map(str, parts)))

    def _child(self, key: str) -> ObjectPath:
        child = ObjectPath(self.protocol, key, self.options)
        child._fs = self._fs
        return child

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name

    @property
    def stem(self) -> str:
        return PurePosixPath(self.key).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.key).suffix

    @property
    def parent(self) -> ObjectPath:
        return self._child(posixpath.dirname(self.key))

    @property
    def parents(self) -> list[ObjectPath]:
        found, key = [], self.key
        while "/" in key:
            key = posixpath.dirname(key)
            found.append(self._child(key))
        return found

    def with_name(self, name: str) -> ObjectPath:
        return self._child(posixpath.join(posixpath.dirname(self.key), name))

    def relative_to(self, other: ObjectPath) -> PurePosixPath:
        return PurePosixPath(self.key).relative_to(other.key)

    def resolve(self) -> ObjectPath:
        return self

    absolute = resolve

    # -- reading --------------------------------------------------------------------------

    def exists(self) -> bool:
        return self.fs.exists(self.key)

    def is_file(self) -> bool:
        return self.fs.isfile(self.key)

    def is_dir(self) -> bool:
        return self.fs.isdir(self.key)

    def stat(self) -> _Stat:
        info = self.fs.info(self.key)
        modified = info.get("LastModified") or info.get("mtime") or info.get("created")
        mtime = modified.timestamp() if hasattr(modified, "timestamp") else float(modified or 0)
        return _Stat(int(info.get("size") or 0), mtime)

    def read_bytes(self) -> bytes:
        return self.fs.cat_file(self.key)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def open(self, mode: str = "rb"):
        return self.fs.open(self.key, mode)

    def iterdir(self):
        try:
            names = self.fs.ls(self.key, detail=False)
        except FileNotFoundError:
            return iter(())
        keys = (self._as_named(name) for name in names)
        return iter(sorted(self._child(key) for key in keys if key != self.key))

    def _as_named(self, listed: str) -> str:
        """A listed key spelled as this path spells its own (memory:// lists with a leading "/")."""
        listed = listed.rstrip("/")
        return listed if self.key.startswith("/") else listed.lstrip("/")

    def glob(self, pattern: str):
        """One level, as saldata uses it (``shard-*.parquet``)."""
        return iter(p for p in self.iterdir() if fnmatch.fnmatchcase(p.name, pattern))

    # -- writing --------------------------------------------------------------------------

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to make: a prefix exists once a key lies under it."""

    def write_bytes(self, data: bytes) -> None:
        """One PUT: an object is whole or absent, never partial."""
        self.fs.pipe_file(self.key, bytes(data))

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.rm_file(self.key)
        except FileNotFoundError:
            if not missing_ok:
                raise


def check_reachable(path) -> None:
    """A one-line ``ConfigError`` when an object path's bucket cannot be reached (absent, no
    credentials, no endpoint, bad options); nothing for a local path. Asked once per bucket and
    options in a process, before the first read or write, so no client's traceback reaches a user."""
    if not is_object(path):
        return
    bucket = path.key.split("/")[0]
    asked = (path.protocol, bucket, repr(sorted(path.options.items())))
    if asked in _REACHABLE:
        return
    where = ObjectPath(path.protocol, bucket, path.options)
    try:
        if path.protocol in ("s3", "s3a"):
            path.fs.call_s3("head_bucket", Bucket=bucket)  # one request, whatever the bucket holds
        else:
            path.fs.ls(bucket)
    except ConfigError:
        raise
    except FileNotFoundError:
        raise ConfigError(
            f"{where}: the bucket {bucket} does not exist; create it first (or check its name)."
        ) from None
    except PermissionError as exc:
        raise ConfigError(f"{where}: access was refused ({first_line(exc)}); check the credentials.") from None
    except Exception as exc:  # the client's own errors (no endpoint, no route, bad options) differ by store
        raise ConfigError(
            f"{where}: the store cannot be reached ({first_line(exc)}); check the endpoint "
            "(--storage-option endpoint_url=... or AWS_ENDPOINT_URL) and the credentials (AWS_ACCESS_KEY_ID, ...)."
        ) from None
    _REACHABLE.add(asked)


_REACHABLE: set[tuple] = set()


# -- what differs between a folder and an object store ---------------------------------------


def remove_tree(path) -> None:
    """Delete a folder (or prefix) and all under it; nothing if absent."""
    if is_object(path):
        with contextlib.suppress(FileNotFoundError):
            path.fs.rm(path.key, recursive=True)
    elif Path(path).is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        Path(path).unlink(missing_ok=True)


def tree_bytes(path) -> int:
    """Bytes of every file under a folder (or prefix), or of one file; 0 if absent. Links are not followed."""
    if is_object(path):
        try:
            return int(path.fs.du(path.key, total=True))
        except FileNotFoundError:
            return 0
    import os

    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file removed while walking (a run's staging) counts 0
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def copy_file(source, target) -> None:
    """Copy one file; between two keys of one store, a server-side copy."""
    if is_object(source) and is_object(target) and source.protocol == target.protocol:
        source.fs.copy(source.key, target.key)
    elif is_object(source) or is_object(target):
        target.write_bytes(source.read_bytes())
    else:
        shutil.copyfile(source, target)


def zarr_target(path, mode: str):
    """What ``zarr.open_group`` takes for ``path``: the folder itself, or Zarr's FsspecStore for a URL."""
    if not is_object(path):
        return path
    from zarr.storage import FsspecStore

    return FsspecStore.from_url(str(path), storage_options=path.options, read_only=mode == "r")
