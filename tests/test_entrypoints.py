"""Entry points are read from the installed distributions' files as ``importlib.metadata`` reads them."""

from __future__ import annotations

import os
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from vlmbench.entrypoints import EntryPoint, entry_points


def by_importlib(group: str) -> list[tuple[str, str, str]]:
    return [(p.name, p.value, str(p.dist.metadata["Name"] if p.dist else "").lower()) for p in metadata.entry_points(group=group)]


def ours(group: str) -> list[tuple[str, str, str]]:
    return [(p.name, p.value, p.distribution) for p in entry_points(group)]


@pytest.mark.parametrize("group", ["vlmbench", "console_scripts", "pytest11"])
def test_the_installed_entry_points_are_those_importlib_metadata_finds(group: str) -> None:
    found = ours(group)
    assert found == by_importlib(group) and found
    if group == "vlmbench":
        assert ("backends", "vlmbench_plugins.plugin", "vlmbench") in found


def dist_info(folder: Path, name: str, version: str, entry_points_txt: str, suffix: str = ".dist-info") -> None:
    info = folder / f"{name.replace('-', '_')}-{version}{suffix}"
    info.mkdir(parents=True)
    (info / ("PKG-INFO" if suffix == ".egg-info" else "METADATA")).write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nText.\n")
    (info / "entry_points.txt").write_text(entry_points_txt)


def test_folders_on_sys_path_first_distribution_of_a_name_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    dist_info(
        first,
        "Demo-Plugin",
        "1.0",
        "# a comment\n[vlmbench]\ndemo = demo_plugin.hooks:Plugin [extra]\n\n[console_scripts]\ndemo = demo_plugin:main\n",
    )
    dist_info(second, "demo_plugin", "0.9", "[vlmbench]\nstale = demo_plugin.old\n")  # shadowed: the same distribution, later on sys.path
    dist_info(second, "Other", "2", "[vlmbench]\nother = other.hooks\n", suffix=".egg-info")
    monkeypatch.setattr(sys, "path", [str(first), str(tmp_path / "missing"), str(second)])
    assert (
        ours("vlmbench")
        == by_importlib("vlmbench")
        == [
            ("demo", "demo_plugin.hooks:Plugin [extra]", "demo-plugin"),
            ("other", "other.hooks", "other"),
        ]
    )


def test_a_zip_on_sys_path_is_read_through_importlib_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("zipped-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped\nVersion: 1.0\n")
        zipped.writestr("zipped-1.0.dist-info/entry_points.txt", "[vlmbench]\nzipped = zipped.hooks\n")
    monkeypatch.setattr(sys, "path", [str(archive), *sys.path])
    assert ("zipped", "zipped.hooks", "zipped") in ours("vlmbench")
    assert ours("vlmbench") == by_importlib("vlmbench")


def test_load_returns_the_named_attribute_or_module() -> None:
    assert EntryPoint("join", "os.path:join", "python").load() is os.path.join
    assert EntryPoint("path", "os.path", "python").load() is os.path
    assert EntryPoint("sep", "os : path.sep [extra]", "python").load() == os.path.sep
    with pytest.raises(ValueError, match="is not 'module:attribute'"):
        EntryPoint("bad", "not a value!", "x").load()
