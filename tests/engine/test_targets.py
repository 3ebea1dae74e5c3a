"""The targets file: strict validation, lossless round-trips, atomic 0600 saves, form problems."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.targets import (
    Target,
    load_targets,
    save_targets,
    target_field_problems,
    target_from_dict,
    target_from_form,
    target_to_dict,
)

TRICKY_TARGETS = [
    Target(name="plain", url="https://example.com/"),
    Target(
        name="quote \" and ' and \\ backslash",
        url="https://example.com/search?q=%22x%22&y='z'",
        interval=5.5,
        timeout=2.0,
        method="POST",
        expect_status=(200, 201, 204),
        regex=r'"status":\s*"ok"|\[\d+\]',
        headers=(("Authorization", "Bearer a.b.c"), ("X-Quote", 'say "hi" [now]')),
        verify_tls=False,
        enabled=False,
    ),
    Target(name="[bold]x[/bold] [[targets]]", url="http://127.0.0.1:8080/[x]"),
    Target(name="ünïcødé 网站 🚀", url="https://bücher.example/straße", regex="ä+ö?"),
    Target(name="# not a comment = yes", url="https://[::1]:8443/a#frag", method="HEAD"),
]


def test_round_trip_keeps_every_field_including_tricky_text(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    save_targets(path, TRICKY_TARGETS)
    assert load_targets(path) == TRICKY_TARGETS


def test_round_trip_with_ca_file_stores_an_absolute_path(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("pem")
    path = tmp_path / "targets.toml"
    path.write_text("[[targets]]\nname = 'a'\nurl = 'https://a.example/'\nca_file = 'ca.pem'\n")
    loaded = load_targets(path)
    assert loaded[0].ca_file == str(tmp_path / "ca.pem")
    save_targets(path, loaded)
    assert load_targets(path) == loaded


def test_save_is_atomic_mode_0600_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    path.write_text("old")
    path.chmod(0o644)
    save_targets(path, TRICKY_TARGETS[:2])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["targets.toml"]


def test_failed_save_keeps_the_old_file_and_removes_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "targets.toml"
    save_targets(path, TRICKY_TARGETS[:1])
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        save_targets(path, TRICKY_TARGETS)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["targets.toml"]


def test_save_refuses_duplicate_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        save_targets(tmp_path / "t.toml", [TRICKY_TARGETS[0], TRICKY_TARGETS[0]])
    assert not (tmp_path / "t.toml").exists()


def test_missing_targets_file_means_no_targets(tmp_path: Path) -> None:
    assert load_targets(tmp_path / "absent.toml") == []


def test_empty_target_list_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    save_targets(path, [])
    assert load_targets(path) == []


def test_to_dict_leaves_out_defaults() -> None:
    assert target_to_dict(Target(name="a", url="https://a.example/")) == {
        "name": "a",
        "url": "https://a.example/",
    }


def test_from_dict_normalises_and_types_values(tmp_path: Path) -> None:
    target = target_from_dict(
        {
            "name": "a",
            "url": "https://a.example/",
            "interval": 15,
            "method": "head",
            "expect_status": [200, 200, 301],
            "headers": {"Accept": "text/html"},
        },
        where="t.toml: [[targets]] #1",
        base_dir=tmp_path,
    )
    assert target.interval == 15.0 and isinstance(target.interval, float)
    assert target.method == "HEAD"
    assert target.expect_status == (200, 301)
    assert target.headers == (("Accept", "text/html"),)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"name": "", "url": "https://a/"}, "name: must not be empty"),
        ({"name": "x" * 101, "url": "https://a/"}, "name: must be at most 100"),
        ({"name": "a\nb", "url": "https://a/"}, "name: must not contain control"),
        ({"name": 5, "url": "https://a/"}, "name: must be a string"),
        ({"name": "a", "url": "https://a/ b"}, "url: must not contain spaces"),
        ({"name": "a", "url": "https://a:0/"}, "url: port"),
        ({"name": "a", "url": "https://a:99999/"}, "url: is not a valid URL"),
        ({"name": "a", "url": "https://a/", "timeout": -1}, "timeout: must be a number"),
        ({"name": "a", "url": "https://a/", "interval": 86401}, "interval:"),
        ({"name": "a", "url": "https://a/", "interval": True}, "interval: must be a number"),
        ({"name": "a", "url": "https://a/", "expect_status": 200}, "expect_status: must be an"),
        ({"name": "a", "url": "https://a/", "regex": r"(a)\1"}, "regex: is not a valid RE2"),
        ({"name": "a", "url": "https://a/", "headers": {"X": "a\r\nb"}}, "headers: header 'X'"),
        ({"name": "a", "url": "https://a/", "verify_tls": "no"}, "verify_tls: must be true"),
        ({"name": "a", "url": "https://a/", "enabled": 1}, "enabled: must be true or false"),
    ],
)
def test_from_dict_rejects_bad_fields_in_one_line(
    tmp_path: Path, raw: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        target_from_dict(raw, where="t.toml: [[targets]] #1", base_dir=tmp_path)
    message = str(caught.value)
    assert message.startswith("t.toml: [[targets]] #1 ")
    assert fragment in message
    assert "\n" not in message and "\r" not in message


def test_regex_problem_is_shown_without_bytes_noise(tmp_path: Path) -> None:
    problems = target_field_problems({"name": "a", "url": "https://a/", "regex": "(a"}, tmp_path)
    assert problems == {"regex": "is not a valid RE2 regex: missing ): (a"}


def test_field_problems_accept_a_valid_form_as_typed(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("pem")
    form = {
        "name": "  shop  ",
        "url": " https://shop.example/ ",
        "interval": "60",
        "timeout": "",
        "method": "post",
        "expect_status": "200, 201 204",
        "regex": "",
        "headers": "Accept: text/html\nX-Token: abc:def\n",
        "verify_tls": "false",
        "ca_file": "ca.pem",
        "enabled": True,
    }
    assert target_field_problems(form, tmp_path) == {}
    target = target_from_form(form, tmp_path)
    assert target == Target(
        name="shop",
        url="https://shop.example/",
        interval=60.0,
        method="POST",
        expect_status=(200, 201, 204),
        headers=(("Accept", "text/html"), ("X-Token", "abc:def")),
        verify_tls=False,
        ca_file=str(tmp_path / "ca.pem"),
    )


def test_field_problems_name_each_bad_field(tmp_path: Path) -> None:
    problems = target_field_problems(
        {
            "name": "",
            "url": "gopher://x",
            "interval": "soon",
            "timeout": "0",
            "method": "FETCH",
            "expect_status": "200, ok",
            "regex": "(?P<x",
            "headers": "no colon here",
            "verify_tls": "perhaps",
            "ca_file": "missing.pem",
        },
        tmp_path,
    )
    assert set(problems) == {
        "name",
        "url",
        "interval",
        "timeout",
        "method",
        "expect_status",
        "regex",
        "headers",
        "verify_tls",
        "ca_file",
    }
    assert problems["interval"] == "must be a number of seconds, got 'soon'"
    assert all("\n" not in p for p in problems.values())


def test_field_problems_require_name_and_url_and_flag_taken_names(tmp_path: Path) -> None:
    assert target_field_problems({}, tmp_path) == {"name": "is required", "url": "is required"}
    problems = target_field_problems(
        {"name": "shop", "url": "https://a/"}, tmp_path, taken_names={"shop"}
    )
    assert problems == {"name": "another target is already called 'shop'"}


def test_unknown_top_level_key_in_targets_file(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    path.write_text("[[target]]\nname = 'a'\nurl = 'https://a/'\n")
    with pytest.raises(ConfigError, match="did you mean 'targets'"):
        load_targets(path)
