"""Write and read the YAML files of the snapshot store.

Output is plain data in a fixed key order, UTF-8 text unescaped, and every string that
could read as a number or a YAML 1.1 keyword double-quoted. That keeps ``1.30`` a string for
any YAML reader, not only for PyYAML, which would quote it anyway. Input is read with
a safe loader only, so a tag such as ``!!python/object`` is an error, never code.
"""

from __future__ import annotations

import re

import yaml

try:
    _SafeLoader = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml.
    _SafeLoader = yaml.SafeLoader

_KEYWORDS = frozenset(
    "y yes n no on off true false null ~ .nan .inf -.inf +.inf".split()
)
_DIGIT = re.compile(r"\d")
_LINE_BREAKS = "\x85\u2028\u2029"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")


class _Dumper(yaml.SafeDumper):
    """A safe dumper that quotes strings another YAML reader could take for numbers."""

    def ignore_aliases(self, data):
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Identifiers such as page_sha256 or k3s_version cannot be read as a number.
    numeric_looking = _DIGIT.search(value) and not _IDENTIFIER.match(value)
    # PyYAML writes U+0085, U+2028 and U+2029 raw in plain style, and a reader takes
    # them for line breaks; in double quotes they are escaped.
    breaks_lines = not value.isprintable() or any(c in value for c in _LINE_BREAKS)
    quoted = not value or numeric_looking or breaks_lines or value.lower() in _KEYWORDS
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if quoted else None)


_Dumper.add_representer(str, _represent_str)


def dump(data: object) -> str:
    """Return ``data`` as YAML text; it must hold only dicts, lists, str, int, bool, None."""
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=4096,
        indent=2,
    )


def load(text: str) -> object:
    """Parse YAML text with a safe loader. Raises ``yaml.YAMLError`` on any problem."""
    return yaml.load(text, Loader=_SafeLoader)
