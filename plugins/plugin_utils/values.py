# Copyright: autoheal.haproxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What kind of JSON value a plugin was handed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def is_list(value):
    """Whether ``value`` is a JSON array as Ansible hands one over: a sequence, but neither a string nor a mapping."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, Mapping))
