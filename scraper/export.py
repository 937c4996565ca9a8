"""Export a stored version for other tools.

Two kinds of output:

- The whole matrix: ``json`` and ``yaml`` keep each row's nested structure, and
  ``csv`` has one column per flattened field path (``dependencies.cni_version``).
- The pins of one Kubernetes version, for an image build: ``packer`` writes a
  variables file for kubernetes-sigs/image-builder, ``imageconfig`` the Kubernetes
  lines of a Spectro Cloud CAPI Image Builder configuration file. Every value comes
  from the matrix row, never from a default of those tools.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import sys
from pathlib import Path

from packaging.version import InvalidVersion, Version

from . import yamlio
from .config import Source
from .diff import flatten
from .errors import UsageError
from .files import FileTypeError, write_file
from .parse import Row, is_version, key_identity

log = logging.getLogger(__name__)

ROW_FORMATS = ("json", "csv", "yaml")
BUILD_FORMATS = ("packer", "imageconfig")
PINS = ("cni_version", "containerd_version", "crictl_version")

# --out - writes to stdout, as with no --out. A file named "-" is --out ./-.
STDOUT = "-"
_FILE_HINT = "give a file path, or - for stdout"

# A Debian revision may contain only alphanumerics and "+", "." and "~" (deb-version(7)).
_DEB_REVISION = re.compile(r"^[A-Za-z0-9+.~]+$")


def check_options(
    output_format: str, k8s: str | None, deb_revision: str | None
) -> None:
    """Raise UsageError unless the options fit the output format."""
    if output_format in ROW_FORMATS:
        if k8s is not None:
            raise UsageError(
                "--k8s applies only to --format packer or imageconfig, "
                f"not {output_format}",
                hint="remove --k8s to export every row",
            )
    elif k8s is None:
        raise UsageError(
            f"--format {output_format} needs --k8s VERSION",
            hint="give a Kubernetes version such as 1.30.4, or a series such as 1.30",
        )
    else:
        parse_request(k8s)
    if deb_revision is not None:
        if output_format != "packer":
            raise UsageError(
                f"--deb-revision applies only to --format packer, not {output_format}",
                hint="remove --deb-revision",
            )
        if not _DEB_REVISION.match(deb_revision):
            raise UsageError(
                f"invalid --deb-revision {deb_revision!r}",
                hint="give the revision of the Debian package, such as 1.1; it may "
                "contain letters, digits, '+', '.' and '~'",
            )


def export_text(
    document: dict,
    source: Source,
    output_format: str,
    k8s: str | None = None,
    deb_revision: str | None = None,
    where: str | None = None,
) -> str:
    """Return the export of a validated snapshot ``document`` in ``output_format``.

    ``where`` names the version file in error messages.
    """
    rows = document["rows"]
    if output_format == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    if output_format == "yaml":
        return yamlio.dump(rows)
    if output_format == "csv":
        return rows_csv(rows, source.key)
    what = f"source {source.name!r} version {document['version']}"
    pin_columns = pin_fields(source, rows, output_format, what, where)
    row = select_row(rows, source.key, k8s, what, where)
    pins = row_pins(row, source.key, pin_columns, where)
    kubernetes = row[source.key]
    warn_notes(row, source.key, pin_columns, output_format)
    if output_format == "packer":
        if deb_revision is None:
            log.warning(
                "kubernetes_deb_version is not written, so image-builder's default "
                "applies to Debian and Ubuntu images; add --deb-revision, such as 1.1 "
                "for the packages on pkgs.k8s.io"
            )
        variables = packer_variables(kubernetes, pins, deb_revision)
        return json.dumps(variables, indent=2) + "\n"
    return imageconfig_text(kubernetes, pins)


def warn_notes(row: Row, key: str, fields: list[str], output_format: str) -> None:
    """Log a warning for each note on the exported row's key or pins.

    A note such as "≥ glibc 2.31" qualifies a pin, and the packer and imageconfig
    formats have no place for it, so the user is warned instead of losing it.
    """
    notes = row.get("notes")
    if not isinstance(notes, dict):
        return
    exported = {key} | {f"{field}.{pin}" for field in fields for pin in PINS}
    for path, note in notes.items():
        if path in exported:
            log.warning(
                "%s of Kubernetes %s has the note %r, which --format %s cannot "
                "carry; check that the image meets it",
                path, row[key], note, output_format,
            )


def csv_columns(rows: list[Row], key: str) -> list[str]:
    """Return the key, then the other flattened field paths in order of appearance."""
    columns = [key]
    for row in rows:
        columns.extend(path for path in flatten(row) if path not in columns)
    return columns


def rows_csv(rows: list[Row], key: str) -> str:
    """Return the rows as CSV (RFC 4180: CRLF line ends, quotes only where needed).

    A field missing from a row is an empty cell.
    """
    columns = csv_columns(rows, key)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        flat = flatten(row)
        writer.writerow([flat.get(column, "") for column in columns])
    return buffer.getvalue()


def parse_request(text: str) -> tuple[Version, bool]:
    """Parse a --k8s value into a version and whether it names a series (1.30)."""
    try:
        version = Version(text)
    except InvalidVersion:
        version = None
    if version is None or len(version.release) < 2:
        raise UsageError(
            f"invalid --k8s {text!r}",
            hint="give a Kubernetes version such as 1.30.4, or a series such as 1.30 "
            "for its newest patch release in the matrix",
        )
    plain = not (
        version.pre or version.post or version.dev or version.local or version.epoch
    )
    return version, len(version.release) == 2 and plain


def select_row(
    rows: list[Row], key: str, request: str, what: str, where: str | None
) -> Row:
    """Return the row of Kubernetes version ``request``, or the newest of a series.

    A series matches final releases only; a pre-release such as 1.31.0-rc.1 has
    to be named in full.
    """
    wanted, is_series = parse_request(request)
    matches = []
    for row in rows:
        identity = key_identity(row.get(key, ""))
        if not isinstance(identity, Version):
            continue
        if is_series:
            found = (
                identity.release[:2] == wanted.release[:2]
                and not identity.is_prerelease
            )
        else:
            found = identity == wanted
        if found:
            matches.append((identity, row))
    if not matches:
        known = ", ".join(str(row.get(key)) for row in rows)
        raise UsageError(
            f"Kubernetes version {request} is not in {what}",
            where=where,
            hint=f"known versions: {known}",
        )
    return max(matches, key=lambda match: match[0])[1]


def pin_fields(
    source: Source, rows: list[Row], output_format: str, what: str, where: str | None
) -> list[str]:
    """Return the key_value fields that contain the pins, or raise UsageError."""
    if source.key_column.parse != "version":
        raise UsageError(
            f"--format {output_format} needs rows keyed by a Kubernetes version, "
            f"but the key column {source.key!r} of source {source.name!r} is parsed as "
            f"{source.key_column.parse}",
            hint="use --format json, csv or yaml for this source",
        )
    fields = [column.field for column in source.columns if column.parse == "key_value"]
    needed = ", ".join(PINS)
    if not fields:
        raise UsageError(
            f"--format {output_format} needs a key_value column with {needed}, but "
            f"source {source.name!r} has no key_value column",
            where=where,
            hint="use --format json, csv or yaml for this source",
        )
    present = {pin for row in rows for field in fields for pin in _mapping(row, field)}
    missing = [pin for pin in PINS if pin not in present]
    if missing:
        raise UsageError(
            f"--format {output_format} needs {needed} in a key_value column, "
            f"but no row of {what} has {', '.join(missing)} in {', '.join(fields)}",
            where=where,
            hint="use --format json, csv or yaml for this source",
        )
    return fields


def row_pins(
    row: Row, key: str, fields: list[str], where: str | None
) -> dict[str, str]:
    """Return the row's cni, containerd and crictl versions, or raise UsageError."""
    pins = {}
    for pin in PINS:
        values = {
            field: _mapping(row, field)[pin]
            for field in fields
            if pin in _mapping(row, field)
        }
        if not values:
            paths = " or ".join(f"{field}.{pin}" for field in fields)
            raise UsageError(
                f"row {row[key]} is missing {paths}",
                where=where,
                hint="the matrix has no pin for it; choose another version with --k8s",
            )
        if len(set(values.values())) > 1:
            listed = ", ".join(
                f"{field}.{pin}={value}" for field, value in values.items()
            )
            raise UsageError(
                f"row {row[key]} has conflicting pins: {listed}",
                where=where,
                hint="export with --format json and choose the value by hand",
            )
        field, value = next(iter(values.items()))
        if not is_version(value):
            raise UsageError(
                f"row {row[key]} has {field}.{pin} = {value!r}, which is not a version",
                where=where,
            )
        pins[pin] = value
    return pins


def _mapping(row: Row, field: str) -> dict:
    value = row.get(field)
    return value if isinstance(value, dict) else {}


def packer_variables(
    kubernetes: str, pins: dict[str, str], deb_revision: str | None = None
) -> dict[str, str]:
    """Return image-builder's Packer variables for one Kubernetes version and its pins.

    The names and value forms follow images/capi/packer/config/kubernetes.json,
    cni.json and containerd.json in kubernetes-sigs/image-builder: a leading "v"
    on the semver and series values, none on the package and tool versions.
    ``kubernetes_deb_version`` is written only with ``deb_revision``, because the
    Debian package revision (the "1.1" of "1.30.4-1.1") is not in the matrix.
    """
    version = kubernetes.removeprefix("v")
    series = ".".join(version.split(".")[:2])
    variables = {
        "kubernetes_semver": f"v{version}",
        "kubernetes_series": f"v{series}",
        # NOTE: a pre-release key such as 1.31.0-rc.1 is written unchanged, which
        # may not match the name its RPM package has.
        "kubernetes_rpm_version": version,
    }
    if deb_revision is not None:
        variables["kubernetes_deb_version"] = f"{version}-{deb_revision}"
    variables["kubernetes_cni_semver"] = "v" + pins["cni_version"].removeprefix("v")
    variables["containerd_version"] = pins["containerd_version"].removeprefix("v")
    variables["crictl_version"] = pins["crictl_version"].removeprefix("v")
    return variables


def imageconfig_text(kubernetes: str, pins: dict[str, str]) -> str:
    """Return the ``key=value`` Kubernetes lines of a CAPI Image Builder config file."""
    values = {"k8s_version": kubernetes, **{pin: pins[pin] for pin in PINS}}
    return "".join(
        f"{name}={value.removeprefix('v')}\n" for name, value in values.items()
    )


def check_out(out: str | None) -> None:
    """Raise UsageError unless ``out`` can name the file to write the export to.

    None and "-" mean stdout. The check runs before the store is read, so a wrong
    path fails at once. write_output checks again when it writes.
    """
    if out is None or out == STDOUT:
        return
    if out == "":
        raise UsageError("--out is empty", hint=_FILE_HINT)
    if os.path.isdir(out):
        raise UsageError(f"--out {out} is a folder", hint=_FILE_HINT)
    if out.endswith(("/", os.sep)):
        # Path() drops a trailing slash, which would turn "missing/" into a file.
        raise UsageError(
            f"--out {out} ends in a slash, so it names a folder", hint=_FILE_HINT
        )


def write_output(text: str, out: str | None) -> None:
    """Write ``text`` to stdout (``out`` None or "-") or to the file ``out``.

    See files.write_file for how a regular file, a symbolic link, a FIFO and a
    character device are written.
    """
    if out is None or out == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    check_out(out)
    path = Path(out)
    try:
        write_file(path, text.encode("utf-8"))
    except IsADirectoryError:
        raise UsageError(f"--out {out} is a folder", hint=_FILE_HINT) from None
    except FileTypeError as error:
        raise UsageError(
            f"--out {out} is a {error.kind}, which export does not write to",
            hint="give a regular file, a FIFO or a character device, or - for stdout",
        ) from None
    except BrokenPipeError:
        raise UsageError(
            f"cannot write --out {out}: the reader closed the pipe before the "
            "whole export was written",
            hint="keep the reader of the FIFO open until the export ends",
        ) from None
    except OSError as error:
        raise UsageError(
            f"cannot write --out {_describe(path)}: {error.strerror or error}",
            hint="give a file in an existing, writable folder",
        ) from None


def _describe(path: Path) -> str:
    """Return ``path``, and the file it resolves to when it is a symbolic link."""
    if not os.path.islink(path):
        return str(path)
    try:
        target = os.path.realpath(path, strict=True)
    except FileNotFoundError:
        target = os.path.realpath(path)
    except OSError:
        # A loop of links has no target, and the OSError message reports the loop.
        return str(path)
    return f"{path} (a link to {target})"
