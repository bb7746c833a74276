"""What a damaged manifest field's error says: the type the field takes, in words that do not contradict the value."""

from __future__ import annotations

import json

import pytest

from a3d_cli.errors import RunFolderError
from a3d_cli.io.manifest import load_manifest


@pytest.mark.parametrize(("field", "value"), [("recipe", 1.5), ("seed", 0.5), ("peak_memory_bytes", 2.5)])
def test_a_fraction_where_a_whole_number_belongs_is_called_by_what_it_is_not(tmp_path, field, value):
    """1.5 is a number, so "expected number" would refuse it for being what it is; the field takes whole numbers."""
    (tmp_path / "a3d.json").write_text(json.dumps({"format": 1, "stages": {"prepare": {field: value}}}))
    with pytest.raises(RunFolderError) as caught:
        load_manifest(tmp_path)
    assert "expected whole number" in str(caught.value)
