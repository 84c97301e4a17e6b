"""Semantic versions and prior references: parsing, ordering, and hostile input.

Property tests (hypothesis): arbitrary strings given as names, versions or whole specs parse
cleanly or raise a :class:`DwpHubError`, never anything else; names with path separators or
``..`` are refused before any file-system access.
"""

from __future__ import annotations

import builtins
import io
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dwp_hub._api
import dwp_hub._listing
from dwp_hub.errors import DwpHubError, InvalidNameError, InvalidVersionError
from dwp_hub.registry import HubRef, LocalRegistry, PriorRef, Version, parse_ref, resolve, validate_name

_SETTINGS = settings(max_examples=300, deadline=None, database=None)
_NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-_."
_HOSTILE = st.text(alphabet=st.sampled_from(list(_NAME_ALPHABET + "/\\.@:~ \x00\n%*?ÅéИ😀")), max_size=40)


# -- versions --------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "parts"), [("0.0.0", (0, 0, 0)), ("1.2.3", (1, 2, 3)), ("10.20.30", (10, 20, 30))])
def test_version_parse(text: str, parts: tuple[int, int, int]) -> None:
    v = Version.parse(text)
    assert (v.major, v.minor, v.patch) == parts
    assert str(v) == text


@pytest.mark.parametrize("text", ["", "1", "1.0", "1.0.0.0", "v1.0.0", "01.0.0", "1.00.0", "1.0.0-rc1", "1.0.0+b",
                                  " 1.0.0", "1.0.0 ", "1..0", "a.b.c", "-1.0.0", "1.0.0\n", "１.0.0", "1234567.0.0",
                                  "1\u0662.0.0", "\u0661.0.0", "1.0.\u0967", "1.\U0001d7d8.0"])
def test_version_malformed(text: str) -> None:
    with pytest.raises(InvalidVersionError, match="MAJOR.MINOR.PATCH"):
        Version.parse(text)


def test_version_non_string() -> None:
    with pytest.raises(InvalidVersionError):
        Version.parse(100)  # type: ignore[arg-type]


def test_version_order_is_numeric() -> None:
    texts = ["1.10.0", "1.9.0", "0.0.1", "2.0.0", "1.9.10", "1.9.2"]
    assert [str(v) for v in sorted(map(Version.parse, texts))] == ["0.0.1", "1.9.0", "1.9.2", "1.9.10", "1.10.0", "2.0.0"]
    assert Version.parse("1.0.0") == Version(1, 0, 0)
    assert Version.parse("1.0.1") > Version.parse("1.0.0") >= Version.parse("1.0.0")


@given(st.tuples(*[st.integers(0, 999_999)] * 3))
@_SETTINGS
def test_version_round_trip(parts: tuple[int, int, int]) -> None:
    v = Version(*parts)
    assert Version.parse(str(v)) == v


@given(st.text(max_size=30))
@_SETTINGS
def test_version_arbitrary_text_parses_or_clean_error(text: str) -> None:
    try:
        v = Version.parse(text)
    except InvalidVersionError:
        return
    assert str(v) == text


# -- names -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["notmnist-7x7", "a", "x9", "cifar10-3x3", "my_prior.v2", "a" * 64])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name
    assert parse_ref(name) == PriorRef(name)


@pytest.mark.parametrize("name", ["", "-a", "a-", ".a", "a.", "A", "Notmnist", "a b", "a..b", "../x", "a/b", "a\\b",
                                  "..", ".", "a\x00b", "a" * 65, "é", "@1.0.0", "a:b",
                                  "abc\n@1.0.0", "a\tb", "a\nb"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidNameError):
        parse_ref(name)


@pytest.mark.parametrize("name", ["abc\n", "abc ", " abc", "abc\r"])
def test_surrounding_whitespace_never_part_of_a_name(name: str) -> None:
    with pytest.raises(InvalidNameError):
        validate_name(name)
    assert parse_ref(name) == PriorRef(name.strip())  # specs typed by users are stripped first


def test_path_separator_message_mentions_hub_form() -> None:
    with pytest.raises(InvalidNameError, match="hf-hub:ORG/REPO"):
        validate_name("org/repo")


def test_spec_with_version() -> None:
    assert parse_ref("notmnist-7x7@1.2.3") == PriorRef("notmnist-7x7", Version(1, 2, 3))
    assert str(parse_ref("notmnist-7x7@1.2.3")) == "notmnist-7x7@1.2.3"
    assert parse_ref("  notmnist-7x7  ") == PriorRef("notmnist-7x7")


@pytest.mark.parametrize("spec", ["notmnist-7x7@", "notmnist-7x7@1.0", "notmnist-7x7@1.0.0\n@1", "notmnist-7x7@latest", "notmnist-7x7@1.0.0@2.0.0",
                                  "notmnist-7x7@v1.0.0"])
def test_malformed_version_in_spec(spec: str) -> None:
    with pytest.raises(InvalidVersionError, match=spec.split("@", 1)[0]):
        parse_ref(spec)


@pytest.mark.parametrize(("spec", "ref"), [
    ("hf-hub:org/repo", HubRef("org/repo")),
    ("hf-hub:Org-1/my.repo_x@v1.0.0", HubRef("Org-1/my.repo_x", "v1.0.0")),
    ("hf-hub:org/repo@" + "a" * 40, HubRef("org/repo", "a" * 40)),
    ("hf-hub:org/repo@refs/pr/1", HubRef("org/repo", "refs/pr/1")),
])
def test_hub_refs(spec: str, ref: HubRef) -> None:
    assert parse_ref(spec) == ref
    assert str(ref) == spec


@pytest.mark.parametrize("spec", ["hf-hub:", "hf-hub:repo", "hf-hub:org/repo/extra", "hf-hub:../repo", "hf-hub:org/..",
                                  "hf-hub:org/re..po", "hf-hub:org/repo@../main", "hf-hub:org/repo@-x", "hf-hub:/repo",
                                  "hf-hub:org/repo.git", "hf-hub:a--b/c", "hf-hub:org/re--po"])
def test_bad_hub_refs(spec: str) -> None:
    with pytest.raises(InvalidNameError):
        parse_ref(spec)


@given(st.text(alphabet=st.sampled_from(list("aZ09-_./@")), max_size=30))
@_SETTINGS
def test_accepted_hub_refs_pass_huggingface_hubs_validator(body: str) -> None:
    """Whatever parse_ref accepts as a Hub reference, huggingface_hub accepts too (no failure deep inside it)."""
    from huggingface_hub.utils import validate_repo_id

    try:
        ref = parse_ref("hf-hub:" + body)
    except DwpHubError:
        return
    validate_repo_id(ref.repo_id)


@given(st.from_regex(r"[a-z0-9]([a-z0-9_-]{0,20}[a-z0-9])?", fullmatch=True),
       st.none() | st.tuples(*[st.integers(0, 999_999)] * 3))
@_SETTINGS
def test_valid_spec_round_trip(name: str, parts: tuple[int, int, int] | None) -> None:
    ref = PriorRef(name, Version(*parts) if parts else None)
    assert parse_ref(str(ref)) == ref


@given(st.text(max_size=60) | _HOSTILE | st.builds(lambda a, b: f"{a}@{b}", _HOSTILE, _HOSTILE)
       | st.builds(lambda a: f"hf-hub:{a}", _HOSTILE))
@_SETTINGS
def test_arbitrary_spec_parses_or_clean_error(spec: str) -> None:
    try:
        ref = parse_ref(spec)
    except DwpHubError as err:
        assert isinstance(err, (InvalidNameError, InvalidVersionError))
        assert str(err)
        return
    if isinstance(ref, PriorRef):
        assert validate_name(ref.name) == ref.name
        assert "/" not in ref.name and "\\" not in ref.name and ".." not in ref.name
        assert parse_ref(str(ref)) == ref
    else:
        assert isinstance(ref, HubRef) and ".." not in ref.repo_id


@given(st.text(max_size=40))
@_SETTINGS
def test_arbitrary_name_validates_or_clean_error(name: str) -> None:
    try:
        assert validate_name(name) == name
    except InvalidNameError:
        return
    assert name == os.path.basename(name) and name not in (".", "..")
    assert name == name.strip() and name.isascii() and name.lower() == name


# -- no file-system access for hostile names ---------------------------------------------------
class _TouchedFileSystem(AssertionError):
    pass


@contextmanager
def _no_file_system() -> Iterator[None]:
    """Fail if anything stats, lists or opens a path while active."""

    def trip(*args: object, **kwargs: object) -> None:
        raise _TouchedFileSystem(f"file system touched: {args!r}")

    with ExitStack() as stack:
        for target in ("os.stat", "os.lstat", "os.scandir", "os.listdir", "os.open", "os.mkdir", "os.makedirs"):
            stack.enter_context(mock.patch(target, trip))
        stack.enter_context(mock.patch.object(builtins, "open", trip))
        stack.enter_context(mock.patch.object(io, "open", trip))
        yield


def _traversal_names() -> st.SearchStrategy[str]:
    evil = st.sampled_from(["/", "\\", "..", "../", "..\\", "/etc/passwd", "../../x"])
    return st.builds(lambda a, e, b: a + e + b, st.text(_NAME_ALPHABET, max_size=10), evil,
                     st.text(_NAME_ALPHABET, max_size=10))


def test_tripwire_works(tmp_path) -> None:
    with _no_file_system(), pytest.raises(_TouchedFileSystem):
        (tmp_path / "x").is_file()


@given(_traversal_names(), st.sampled_from(["", "@1.0.0"]))
@_SETTINGS
def test_traversal_names_rejected_before_file_system(name: str, suffix: str) -> None:
    reg = LocalRegistry("/nonexistent-dwp-hub-registry")
    with _no_file_system():
        for call in (lambda: parse_ref(name + suffix), lambda: resolve(name + suffix),
                     lambda: dwp_hub._api.load(name + suffix), lambda: dwp_hub._listing.prior_card(name + suffix),
                     lambda: reg.folder(name, Version(1, 0, 0))):
            with pytest.raises(InvalidNameError):
                call()
