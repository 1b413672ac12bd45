"""Writers: arrays, torch Datasets and SQL queries into dataset tables, all through one transactional path.

New and replaced datasets are first written to a staging table and swapped in at the end, so a failure (or a
killed process) never leaves a half-written dataset under the real name; appends run in one transaction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa
from tqdm.auto import tqdm

from lightning_dm8.db.coerce import as_database
from lightning_dm8.db.engine import Database
from lightning_dm8.db.fastpath import insert_rows
from lightning_dm8.db.names import check_table_name
from lightning_dm8.errors import InvalidInputError, TableExistsError
from lightning_dm8.tables import registry, versions
from lightning_dm8.tables.codecs import (
    FeatureCodec,
    LabelKind,
    as_numpy,
    infer_codec,
    infer_varlen_codec,
    label_kind_of,
)
from lightning_dm8.tables.ddl import create_dataset_table, table_exists
from lightning_dm8.tables.fingerprint import Fingerprint
from lightning_dm8.tables.frames import as_columns, column_values
from lightning_dm8.tables.gc import DEFAULT_KEEP_VERSIONS, prune_versions
from lightning_dm8.tables.record import (
    column_rows,
    columns_codec,
    describe_columns,
    encode_row,
    record_label_kind,
    sample_record_codec,
)
from lightning_dm8.tables.staging import drop_quietly

IfExists = Literal["fail", "replace", "append"]
RESERVED_PREFIX = "ldm8_"
"""The project's own tables (registry, staging, model tables) start with this; datasets may not."""
_IF_EXISTS = ("fail", "replace", "append")
_BATCH_BYTES = 8 << 20


def check_dataset_name(db: Database, name: str) -> None:
    """A dataset name must be a table name the backend can hold, outside the project's reserved prefix."""
    check_table_name(db.backend, name, "dataset name")
    if name.lower().startswith(RESERVED_PREFIX):
        raise InvalidInputError(
            f"dataset name {name!r} starts with {RESERVED_PREFIX!r}, which is reserved for lightning_dm8's own tables "
            f"(the registry, staging and model tables); choose another name"
        )


def write_rows(
    db: Database,
    name: str,
    codec: FeatureCodec,
    label_kind: LabelKind,
    samples: Iterable[tuple[Any, Any]],
    *,
    total: int | None,
    if_exists: IfExists = "fail",
    force: bool = False,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
    progress: bool = True,
) -> registry.DatasetInfo:
    """Encode ``(features, label)`` samples with ``codec`` and store them as a new version of dataset ``name``.

    The common path of every writer; ``samples`` may be a generator (it is consumed once). The rows go to a physical
    table of their own, published by one registry transaction; the dataset's name is then a view of it, and versions
    beyond the newest ``keep_versions`` are dropped.
    """
    if keep_versions < 1:
        raise InvalidInputError(f"keep_versions must be at least 1 (the current version); got {keep_versions}")
    check_dataset_name(db, name)
    if if_exists not in _IF_EXISTS:
        raise InvalidInputError(f"if_exists must be one of {_IF_EXISTS}; got {if_exists!r}")
    registry.ensure_registry(db)
    with db.connect(f"prepare dataset {name!r}") as conn:
        existing = registry.read_info(conn, name)
        exists = existing is not None or table_exists(conn, name)
    if existing is not None and not existing.version:
        existing = versions.adopt(db, name)
    if exists and existing is None and not (force and if_exists == "replace"):
        raise TableExistsError(
            f"table {name!r} in {db.url} exists but is not a dataset (it has no entry in {registry.REGISTRY.name}), so "
            f"it is left alone; choose another name, or pass if_exists='replace' with force=True to replace that "
            f"table with the dataset"
        )
    if exists and if_exists == "fail":
        raise TableExistsError(
            f"dataset table {name!r} already exists in {db.url}; pass if_exists='replace' to overwrite it or "
            f"if_exists='append' to add rows"
        )
    if exists and if_exists == "append":
        assert existing is not None
        info = _append(db, existing, codec, label_kind, samples, total, progress)
    else:
        info = _create(db, name, codec, label_kind, samples, total, progress, replace_existing=if_exists == "replace")
        if exists and existing is None:  # force=True: the user's own table is in the way of the dataset's view
            versions.drop_tables(db, [name])
    versions.repair_view(db, name)
    prune_versions(db, name, keep_versions)
    return info


def _batches(
    codec: FeatureCodec, label_kind: LabelKind, samples: Iterable[tuple[Any, Any]], start: int, fp: Fingerprint
) -> Iterator[list[tuple[Any, ...]]]:
    """Encoded rows ``(row_id, *features, [label])`` in batches of about 8 MB."""
    batch: list[tuple[Any, ...]] = []
    size = 0
    for offset, (features, label) in enumerate(samples):
        row_id = start + offset
        row = (row_id, *_encoded(codec, label_kind, features, label, row_id))
        fp.update(row)
        batch.append(row)
        size += sum(len(v) if isinstance(v, (bytes, str)) else 8 for v in row)
        if size >= _BATCH_BYTES or len(batch) >= 20000:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _encoded(codec: FeatureCodec, label_kind: LabelKind, features: Any, label: Any, row_id: int) -> tuple[Any, ...]:
    """A sample's stored values after its row id: the features, then the label(s)."""
    try:
        if codec.kind == "record":
            return encode_row(codec, features, label)
        value = codec.encode(features)
    except InvalidInputError as exc:
        raise InvalidInputError(f"sample {row_id}: {exc}") from exc
    values = value if isinstance(value, tuple) else (value,)
    return values if label_kind == "none" else (*values, _label_value(label, label_kind, row_id))


def _label_value(label: Any, label_kind: LabelKind, row_id: int) -> int | float:
    """The label as stored. The kind comes from the first label, so a later fractional label in an integer-labelled
    dataset is an error rather than silently truncated."""
    if label is None:
        raise InvalidInputError(f"sample {row_id}: the label is None; every row of a labelled dataset needs one")
    if label_kind == "float":
        value = float(label)
        if not math.isfinite(value):
            raise InvalidInputError(
                f"sample {row_id}: label {value!r} is not a finite number; a dataset's labels must be finite "
                f"(drop or fix row {row_id})"
            )
        return value
    if isinstance(label, (float, np.floating)) and not float(label).is_integer():
        raise InvalidInputError(
            f"sample {row_id}: label {label!r} is not a whole number, but the dataset's labels are integers (as the "
            f"first sample's label is); give every label as a float"
        )
    return int(label)


class _NoBar:
    """The progress bar of a write that shows none. Not a disabled tqdm: tqdm takes a lock shared by every process
    forked from this one even for a disabled bar (in ``tqdm.__new__``), and a writer killed while holding it
    (SIGKILL) would leave every other writer of that process family waiting for it forever."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        """Nothing to show."""


def _rows_bar(total: int | None, desc: str, progress: bool) -> Any:
    """A bar counting written rows, or none (:class:`_NoBar`)."""
    return tqdm(total=total, desc=desc, unit="rows") if progress else _NoBar()


def _fill(conn: sa.Connection, table: sa.Table, batches: Iterable[list[tuple[Any, ...]]], bar: Any) -> int:
    count = 0
    for batch in batches:
        insert_rows(conn, table, batch)
        count += len(batch)
        bar.update(len(batch))
    return count


def _create(
    db: Database, name: str, codec: FeatureCodec, label_kind: LabelKind,
    samples: Iterable[tuple[Any, Any]], total: int | None, progress: bool, *, replace_existing: bool,
) -> registry.DatasetInfo:
    registry.check_codec_fits(codec)
    physical = versions.new_physical_name()
    table = registry.DatasetInfo(physical, 0, codec, label_kind, "", registry.now(), registry.now()).table(db.backend)
    fp = Fingerprint()
    with db.begin(f"create the table for {name!r}") as conn:
        create_dataset_table(conn, db.backend, table, codec)
    try:
        with _rows_bar(total, f"writing {name}", progress) as bar, \
                db.begin(f"write dataset {name!r}") as conn:
            count = _fill(conn, table, _batches(codec, label_kind, samples, 0, fp), bar)
        if count == 0:
            raise InvalidInputError(f"no rows to write into dataset {name!r}: the input is empty")
        with db.begin(f"analyze dataset {name!r}") as conn:
            db.backend.analyze_table(conn, physical)
        stamp = registry.now()
        fingerprint = fp.hexdigest()
        info = registry.DatasetInfo(name, count, codec, label_kind, fingerprint, stamp, stamp, physical=physical,
                                    lineage=fingerprint)
        return versions.publish(db, info, replace_existing=replace_existing)
    except BaseException:
        _close_source(samples)
        drop_quietly(db, physical)
        raise


def _close_source(samples: Iterable[Any]) -> None:
    """Close a half-consumed source generator at once: a query source holds a connection (on SQLite a read lock
    that blocks dropping the staging table) until it is closed, which garbage collection may not do for a while."""
    close = getattr(samples, "close", None)
    if callable(close):
        close()


def _append(
    db: Database, existing: registry.DatasetInfo, codec: FeatureCodec, label_kind: LabelKind,
    samples: Iterable[tuple[Any, Any]], total: int | None, progress: bool,
) -> registry.DatasetInfo:
    if (codec, label_kind) != (existing.codec, existing.label_kind):
        raise InvalidInputError(
            f"cannot append to dataset {existing.name!r}: it stores "
            f"{_stored(existing.codec, existing.label_kind, ' features')}, the new rows are "
            f"{_stored(codec, label_kind)}"
        )
    with _rows_bar(total, f"appending to {existing.name}", progress) as bar, \
            db.begin(f"append to dataset {existing.name!r}") as conn:
        # The registry row stays locked until the rows and the new version commit: appends take turns.
        registry.head_row(conn, existing.name, lock=True)
        current = registry.read_info(conn, existing.name)
        if current is None or current.table_name != existing.table_name:
            raise TableExistsError(f"dataset {existing.name!r} was replaced or dropped while appending; append again")
        fp = Fingerprint(current.fingerprint)
        table = current.table(db.backend)
        count = _fill(conn, table, _batches(codec, label_kind, samples, current.row_count, fp), bar)
        if count == 0:
            raise InvalidInputError(f"no rows to append to dataset {existing.name!r}: the input is empty")
        stamp = registry.now()
        appended = registry.DatasetInfo(existing.name, current.row_count + count, codec, label_kind, fp.hexdigest(),
                                        current.created_at, stamp)
        info = versions.append_version(conn, current, appended)
    with db.begin(f"analyze dataset {existing.name!r}") as conn:
        db.backend.analyze_table(conn, info.table_name)
    return info


def _stored(codec: FeatureCodec, label_kind: LabelKind, noun: str = "") -> str:
    """What a dataset stores, for an error message: ``array (|u1, shape (3, 32, 32)) with int labels``, or a record's
    columns ``columns [image:uint8[3, 32, 32], title:text] with label columns [y:int]``."""
    if codec.kind == "record":
        return f"columns [{describe_columns(codec.fields)}] with label columns [{describe_columns(codec.targets)}]"
    return f"{codec.kind}{noun} ({codec.dtype}, shape {codec.shape}) with {label_kind} labels"


def _labels_array(labels: Any, n: int) -> np.ndarray | None:
    if labels is None:
        return None
    arr = np.asarray(as_numpy(labels))
    if arr.ndim != 1:
        raise InvalidInputError(f"labels must be 1-D (one per row); got shape {arr.shape}")
    if arr.shape[0] != n:
        raise InvalidInputError(f"features has {n} rows but labels has {arr.shape[0]}; they must have the same length")
    return arr


def write_arrays(
    url: str | Database,
    name: str,
    features: Any,
    labels: Any = None,
    *,
    if_exists: IfExists = "fail",
    force: bool = False,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
    progress: bool = True,
) -> registry.DatasetInfo:
    """Store arrays as dataset ``name`` (a new version of it, when it exists).

    Args:
        url: database URL (or a :class:`Database`).
        name: the dataset table's name.
        features: an array or tensor ``(N, ...)`` (one fixed-shape binary value per row), a list of 1-D arrays of one
            dtype and varying length, a list of ``str`` or a list of ``bytes``. Or several columns, each stored as a
            database column of its own (a record dataset): a dict ``{column: values}`` (each value one of the above,
            or ``N`` numbers: an ``int``, ``float`` or ``bool`` column), a pandas DataFrame or a pyarrow Table
            (rows by position; missing values are refused).
        labels: ``N`` integer or float labels, or None for an unlabelled dataset. With several feature columns: such
            an array (a label column ``label``), a dict ``{column: values}`` of label columns (numbers, or
            ``(N, k)`` arrays: a vector per row, for multi-label), or the name (or a list of names) of columns of
            ``features`` to store as label columns instead.
        if_exists: ``"fail"`` (default), ``"replace"`` or ``"append"`` (row ids continue densely). Only datasets
            (tables in the registry) are ever replaced or appended to.
        force: with ``if_exists="replace"``, replace a table of that name that is *not* a dataset (a table of your
            own): explicit, because that table is dropped.
        keep_versions: how many versions of the dataset to keep (the current one included); older ones are dropped
            after the write. Runs reading an older version that is dropped fail with a clear error.
        progress: show a progress bar.

    Raises:
        InvalidInputError: the name or the data cannot be stored (the message says which row and why).
        TableExistsError: the name is taken and ``if_exists``/``force`` do not allow replacing it.
        DatabaseError: and its subclasses, for what the database reports.

    Returns:
        The registry entry of the written dataset.
    """
    options: dict[str, Any] = {"if_exists": if_exists, "force": force, "keep_versions": keep_versions,
                               "progress": progress}
    columns = as_columns(features)
    if columns is not None:
        return _write_columns(as_database(url), name, columns, labels, options)
    features = as_numpy(features)
    n = len(features) if features is not None else 0
    if n == 0:
        raise InvalidInputError(f"no rows to write into dataset {name!r}: features is empty")
    label_array = _labels_array(labels, n)
    label_kind = label_kind_of(label_array)
    if isinstance(features, np.ndarray) and features.dtype != object:
        codec = infer_codec(features[0])
        rows: Iterable[Any] = features
    else:
        items = list(features)
        codec = _codec_for_list(items)
        rows = items
    label_values: Iterable[Any] = label_array.tolist() if label_array is not None else [None] * n
    return write_rows(as_database(url), name, codec, label_kind, zip(rows, label_values, strict=True), total=n,
                      **options)


def _write_columns(
    db: Database, name: str, columns: dict[str, Any], labels: Any, options: dict[str, Any]
) -> registry.DatasetInfo:
    """write_arrays of several columns: a record dataset, one database column per feature and per label column."""
    targets = _label_columns(columns, labels)
    if columns and not any(len(values) for values in (*columns.values(), *targets.values())):
        raise InvalidInputError(f"no rows to write into dataset {name!r}: the columns are empty")
    codec = columns_codec(columns, targets, db.backend)
    n = len(next(iter(columns.values())))
    return write_rows(db, name, codec, record_label_kind(codec), column_rows(columns, targets), total=n, **options)


def _label_columns(columns: dict[str, Any], labels: Any) -> dict[str, Any]:
    """The label columns of a record: named columns taken out of ``columns``, a dict of columns, or one array
    (a column ``label``)."""
    if labels is None:
        return {}
    if isinstance(labels, str) or (isinstance(labels, (list, tuple)) and labels
                                   and all(isinstance(label, str) for label in labels)):
        names = [labels] if isinstance(labels, str) else list(labels)
        unknown = [label for label in names if label not in columns]
        if unknown:
            raise InvalidInputError(f"labels names columns {unknown} that features does not have; its columns are "
                                    f"{list(columns)}")
        return {label: columns.pop(label) for label in names}
    targets = as_columns(labels)
    return targets if targets is not None else {"label": column_values("label", labels)}


def _codec_for_list(items: Sequence[Any]) -> FeatureCodec:
    """Codec for a list of samples: text, bytes, or 1-D arrays (ragged allowed) that must share one dtype."""
    first = items[0]
    if isinstance(first, (str, bytes, bytearray, memoryview)):
        codec = infer_codec(first)
        for i, item in enumerate(items):
            if type(item) is not type(first) and not (codec.kind == "bytes" and isinstance(item, (bytes, bytearray))):
                raise InvalidInputError(
                    f"inconsistent features: item 0 is {type(first).__name__}, item {i} is {type(item).__name__}"
                )
        return codec
    arrays = [np.asarray(as_numpy(x)) for x in items]
    first = arrays[0]
    if first.ndim != 1:
        # A list of samples of one shape (e.g. images) is stored like the array stacking them.
        codec = infer_codec(first)
        for i, arr in enumerate(arrays):
            if arr.shape != first.shape:
                raise InvalidInputError(
                    f"inconsistent shapes: item 0 has shape {first.shape}, item {i} has {arr.shape}; a list holds "
                    f"samples of one shape, or 1-D arrays of varying length"
                )
            if arr.dtype != first.dtype:
                raise InvalidInputError(f"inconsistent dtypes: item 0 is {first.dtype}, item {i} is {arr.dtype}")
        return codec
    codec = infer_varlen_codec(arrays)
    for i, arr in enumerate(arrays):
        if arr.ndim != 1:
            raise InvalidInputError(
                f"inconsistent features: item {i} has shape {arr.shape}; list items must be 1-D arrays"
            )
        if arr.dtype != first.dtype:
            raise InvalidInputError(f"inconsistent dtypes: item 0 is {first.dtype}, item {i} is {arr.dtype}")
    return codec


def write_dataset(
    url: str | Database,
    name: str,
    dataset: Any,
    *,
    if_exists: IfExists = "fail",
    force: bool = False,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
    varlen: bool | Sequence[str] = False,
    progress: bool = True,
) -> registry.DatasetInfo:
    """Store a map-style torch Dataset yielding ``(features, label)`` as dataset table ``name``.

    The codec is taken from the first sample (an array or tensor, ``str`` or ``bytes``); every later sample must
    match its shape and dtype. ``varlen=True`` stores 1-D samples of varying length instead. ``if_exists``,
    ``force`` and ``keep_versions`` as in :func:`write_arrays`.

    Features given as a dict ``{column: value}`` make a record dataset, each column stored as a database column of
    its own (its kind from the first sample: a number, ``str``, ``bytes`` or an array); the label is then None (no
    label column), one value (a column ``label``: a number, or a 1-D array for multi-label) or a dict of label
    columns. An item that is a bare dict is an unlabelled record. ``varlen`` may name the feature columns stored as
    variable-length 1-D arrays (True: every 1-D array column).

    Raises:
        InvalidInputError: the name, or a sample (named by its index, with the column), cannot be stored.
        TableExistsError: the name is taken and ``if_exists``/``force`` do not allow replacing it.
        DatabaseError: and its subclasses, for what the database reports.
    """
    n = len(dataset)
    if n == 0:
        raise InvalidInputError(f"no rows to write into dataset {name!r}: the dataset is empty")
    first_features, first_label = _sample(dataset, 0)
    options: dict[str, Any] = {"if_exists": if_exists, "force": force, "keep_versions": keep_versions,
                               "progress": progress}
    if isinstance(first_features, Mapping):
        db = as_database(url)
        record = sample_record_codec(first_features, first_label, varlen, db.backend)
        records = (_sample(dataset, i) for i in range(n))
        return write_rows(db, name, record, record_label_kind(record), records, total=n, **options)
    if not isinstance(varlen, bool):
        raise InvalidInputError(f"varlen={varlen!r} names columns of dict samples; this dataset's features are "
                                f"{type(first_features).__name__}: pass varlen=True to store them as variable-length")
    codec = infer_varlen_codec([first_features]) if varlen else infer_codec(first_features)
    label_kind = label_kind_of(None if first_label is None else np.asarray(as_numpy(first_label)).reshape(-1))

    def samples() -> Iterator[tuple[Any, Any]]:
        for i in range(n):
            features, label = _sample(dataset, i)
            features = as_numpy(features)
            if codec.kind == "array" and np.shape(features) != codec.shape:
                raise InvalidInputError(
                    f"inconsistent shapes: sample 0 has shape {codec.shape}, sample {i} has {np.shape(features)}"
                )
            if codec.kind in ("array", "varlen") and not codec.stores_dtype(np.asarray(features).dtype):
                raise InvalidInputError(
                    f"inconsistent dtypes: sample 0 is {codec.np_dtype}, sample {i} is {np.asarray(features).dtype}"
                )
            yield features, _scalar(label)

    return write_rows(as_database(url), name, codec, label_kind, samples(), total=n, **options)


def _scalar(label: Any) -> Any:
    """A label as a Python number (tensors and numpy scalars included); None stays None."""
    if label is None:
        return None
    value = as_numpy(label)
    return value.item() if hasattr(value, "item") else value


def _sample(dataset: Any, i: int) -> tuple[Any, Any]:
    """Item ``i`` as ``(features, label)``; a bare dict is an unlabelled record."""
    item = dataset[i]
    if isinstance(item, Mapping):
        return item, None
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise InvalidInputError(
            f"dataset item {i} is {type(item).__name__}; write_dataset needs (features, label) pairs (or dicts of "
            f"columns)"
        )
    return item[0], item[1]
