"""Tamper suite over real prior folders (copies of the tiny registry).

Every variant is refused with an :class:`IntegrityError` or :class:`CardError` whose message
names the offending file, both through a registry (index + ``checksums.json``) and for a bare
version folder verified against its ``checksums.json`` alone (a Hub snapshot). Harmless
variants are documented below as accepted:

* hidden dotfiles (``.gitattributes``, editor swap files, ``.lock``) are ignored;
* a missing ``checksums.json`` inside a registry is tolerated: the index still lists and
  verifies every file (a bare folder without it is refused);
* an edit of harmless card metadata (e.g. the description) *with every checksum rewritten to
  match* is accepted: checksums catch corruption and accidental or partial edits, not an
  actor with write access to the registry who rewrites everything consistently. Weights,
  every architecture field (``weights_sha256`` covers the tensors *and* ``arch``, activation
  included) and identity (the card name and version) remain protected even then, as long as
  the card's ``weights_sha256`` is not rewritten too, as the ``*_rehashed`` variants show.
  What a folder whose files an attacker fully controls can and cannot promise is in
  ``docs/integrity.md``.

Malformed shapes (JSON of the wrong type, nesting 5,000 deep, 5,000-digit integers) and files
that are not regular files (a FIFO, a directory, a symlink loop) are refused with the same
clean errors, never a raw exception or a hang.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import dwp_hub
from dwp_hub._api import load_folder
from dwp_hub.cli import app
from dwp_hub.constants import CARD_METADATA_KEY
from dwp_hub.errors import CardError, IntegrityError
from dwp_hub.registry._local import folder_checksums

NEW, OLD = ("tiny-7x7", "1.1.0"), ("tiny-7x7", "1.0.0")


def _folder(reg: Path, which: tuple[str, str] = NEW) -> Path:
    return reg / which[0] / which[1]


def _rehash(reg: Path, which: tuple[str, str] = NEW) -> None:
    """Rewrite checksums.json and the index entry so they match the folder's current files."""
    folder = _folder(reg, which)
    sums = folder_checksums(folder)
    (folder / "checksums.json").write_text(json.dumps(sums, indent=2, sort_keys=True))
    index = json.loads((reg / "index.json").read_text())
    index["priors"][which[0]][which[1]]["files"] = sums
    (reg / "index.json").write_text(json.dumps(index))


def _header_len(path: Path) -> int:
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _rewrite_header(path: Path, header_text: str) -> None:
    """Replace a safetensors header by ``header_text`` (raw JSON), keeping the tensor bytes."""
    data = path.read_bytes()
    raw = header_text.encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[_header_len(path):])


def _rewrite_card_text(path: Path, edit: Callable[[str], str]) -> None:
    """Rewrite the card JSON *text* in the header (for values json.dumps cannot write)."""
    header = json.loads(path.read_bytes()[8:_header_len(path)])
    header["__metadata__"][CARD_METADATA_KEY] = edit(header["__metadata__"][CARD_METADATA_KEY])
    _rewrite_header(path, json.dumps(header))


def _rewrite_card(path: Path, edit: Callable[[dict], None]) -> None:
    tensors = load_file(str(path))
    meta = dict(json.loads(path.read_bytes()[8:_header_len(path)])["__metadata__"])
    card = json.loads(meta[CARD_METADATA_KEY])
    edit(card)
    meta[CARD_METADATA_KEY] = json.dumps(card)
    save_file(tensors, str(path), metadata=meta)


# -- variants: each tampers with registry ``reg`` and returns the file the error must name ------------
def truncated_weights(reg: Path) -> str:
    p = _folder(reg) / "model.safetensors"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return "model.safetensors"


def empty_weights(reg: Path) -> str:
    (_folder(reg) / "model.safetensors").write_bytes(b"")
    return "model.safetensors"


def flipped_tensor_byte(reg: Path) -> str:
    p = _folder(reg) / "model.safetensors"
    _flip(p, (_header_len(p) + p.stat().st_size) // 2)
    return "model.safetensors"


def flipped_last_byte(reg: Path) -> str:
    p = _folder(reg) / "model.safetensors"
    _flip(p, p.stat().st_size - 1)
    return "model.safetensors"


def flipped_header_byte(reg: Path) -> str:
    p = _folder(reg) / "model.safetensors"
    _flip(p, _header_len(p) // 2)
    return "model.safetensors"


def flipped_header_length(reg: Path) -> str:
    _flip(_folder(reg) / "model.safetensors", 0)
    return "model.safetensors"


def edited_card_metric(reg: Path) -> str:
    _rewrite_card(_folder(reg) / "model.safetensors", lambda c: c["metrics"].update(heldout_elbo=1e9))
    return "model.safetensors"


def edited_card_weights_sha(reg: Path) -> str:
    _rewrite_card(_folder(reg) / "model.safetensors", lambda c: c.update(weights_sha256="0" * 64))
    return "model.safetensors"


def swapped_weights(reg: Path) -> str:
    a, b = _folder(reg, NEW) / "model.safetensors", _folder(reg, OLD) / "model.safetensors"
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    return "model.safetensors"


def swapped_readme(reg: Path) -> str:
    shutil.copyfile(_folder(reg, OLD) / "README.md", _folder(reg, NEW) / "README.md")
    return "README.md"


def swapped_samples(reg: Path) -> str:
    shutil.copyfile(_folder(reg, OLD) / "samples.png", _folder(reg, NEW) / "samples.png")
    return "samples.png"


def swapped_whole_folder_contents(reg: Path) -> str:
    """1.0.0's files (with its own consistent checksums.json) copied over 1.1.0."""
    shutil.rmtree(_folder(reg, NEW))
    shutil.copytree(_folder(reg, OLD), _folder(reg, NEW))
    return "README.md|model.safetensors"  # registry: first file off the index; bare: the card's identity


def missing_readme(reg: Path) -> str:
    (_folder(reg) / "README.md").unlink()
    return "README.md"


def missing_samples(reg: Path) -> str:
    (_folder(reg) / "samples.png").unlink()
    return "samples.png"


def missing_weights(reg: Path) -> str:
    (_folder(reg) / "model.safetensors").unlink()
    return "model.safetensors"


def missing_latents(reg: Path) -> str:
    (_folder(reg) / "latents.png").unlink()  # optional, but listed in the checksums
    return "latents.png"


def modified_latents(reg: Path) -> str:
    with open(_folder(reg) / "latents.png", "ab") as fh:
        fh.write(b"\0")
    return "latents.png"


def extra_file(reg: Path) -> str:
    (_folder(reg) / "notes.txt").write_text("hello")
    return "notes.txt"


def extra_pickle(reg: Path) -> str:
    (_folder(reg) / "pytorch_model.bin").write_bytes(_EVIL_PICKLE)
    return "pytorch_model.bin"


def extra_optional_file(reg: Path) -> str:
    (_folder(reg) / "recipe.yaml").write_text("name: sneaky\n")  # allowed name, but not in the checksums
    return "recipe.yaml"


def extra_directory(reg: Path) -> str:
    (_folder(reg) / "subdir").mkdir()
    return "subdir"


def edited_checksums(reg: Path) -> str:
    p = _folder(reg) / "checksums.json"
    sums = json.loads(p.read_text())
    sums["README.md"] = "0" * 64
    p.write_text(json.dumps(sums))
    return "checksums.json"


def garbage_checksums(reg: Path) -> str:
    (_folder(reg) / "checksums.json").write_text("{oops")
    return "checksums.json"


def checksums_lists_unknown_file(reg: Path) -> str:
    p = _folder(reg) / "checksums.json"
    sums = json.loads(p.read_text())
    sums["../index.json"] = "0" * 64
    p.write_text(json.dumps(sums))
    return "checksums.json"


def checksums_drops_readme(reg: Path) -> str:
    p = _folder(reg) / "checksums.json"
    sums = json.loads(p.read_text())
    del sums["README.md"]
    p.write_text(json.dumps(sums))
    return "README.md"


def edited_index(reg: Path) -> str:
    index = json.loads((reg / "index.json").read_text())
    index["priors"]["tiny-7x7"]["1.1.0"]["files"]["model.safetensors"] = "f" * 64
    (reg / "index.json").write_text(json.dumps(index))
    return "model.safetensors"


def index_points_at_other_version(reg: Path) -> str:
    """The index entry of 1.1.0 copied from 1.0.0: checksums.json disagrees."""
    index = json.loads((reg / "index.json").read_text())
    entry = index["priors"]["tiny-7x7"]
    entry["1.1.0"]["files"] = entry["1.0.0"]["files"]
    (reg / "index.json").write_text(json.dumps(index))
    return "README.md"  # the first file (sorted) whose hash disagrees


# Variants whose every checksum is rewritten afterwards: the deeper checks must still refuse.
def truncated_weights_rehashed(reg: Path) -> str:
    out = truncated_weights(reg)
    _rehash(reg)
    return out


def flipped_tensor_byte_rehashed(reg: Path) -> str:
    out = flipped_tensor_byte(reg)
    _rehash(reg)
    return out


def broken_header_json_rehashed(reg: Path) -> str:
    p = _folder(reg) / "model.safetensors"
    data = bytearray(p.read_bytes())
    data[8] = ord("[")  # the header's opening brace
    p.write_bytes(bytes(data))
    _rehash(reg)
    return "model.safetensors"


def edited_card_weights_sha_rehashed(reg: Path) -> str:
    out = edited_card_weights_sha(reg)
    _rehash(reg)
    return out


def edited_card_arch_rehashed(reg: Path) -> str:
    _rewrite_card(_folder(reg) / "model.safetensors", lambda c: c["arch"].update(hidden=9))
    _rehash(reg)
    return "model.safetensors"


def edited_card_schema_rehashed(reg: Path) -> str:
    _rewrite_card(_folder(reg) / "model.safetensors", lambda c: c.update(surprise=True))
    _rehash(reg)
    return "model.safetensors"


def swapped_weights_rehashed(reg: Path) -> str:
    """1.0.0's weights in 1.1.0's folder with every checksum made consistent: the card inside
    still says 1.0.0, so the swap is detected."""
    shutil.copyfile(_folder(reg, OLD) / "model.safetensors", _folder(reg, NEW) / "model.safetensors")
    _rehash(reg)
    return "model.safetensors"


def pickle_as_weights_rehashed(reg: Path) -> str:
    (_folder(reg) / "model.safetensors").write_bytes(_EVIL_PICKLE)
    _rehash(reg)
    return "model.safetensors"


def edited_card_activation_rehashed(reg: Path) -> str:
    """The attack of issue 16: switch the activation (same tensors, same shapes) and rewrite every checksum."""
    _rewrite_card(_folder(reg) / "model.safetensors", lambda c: c["arch"].update(activation="relu"))
    _rehash(reg)
    return "model.safetensors"


def downgraded_weights_scope_rehashed(reg: Path) -> str:
    """Drop the scope field (pretend a legacy card) to escape the architecture binding."""
    def edit(c: dict) -> None:
        c.pop("weights_sha256_scope")
        c["arch"]["activation"] = "relu"
    _rewrite_card(_folder(reg) / "model.safetensors", edit)
    _rehash(reg)
    return "model.safetensors"


def checksums_is_a_list(reg: Path) -> str:
    (_folder(reg) / "checksums.json").write_text(json.dumps(["model.safetensors", "README.md"]))
    return "checksums.json"


def checksums_value_is_a_number(reg: Path) -> str:
    p = _folder(reg) / "checksums.json"
    sums = json.loads(p.read_text())
    sums["README.md"] = 12
    p.write_text(json.dumps(sums))
    return "checksums.json"


def checksums_nested_5000_deep(reg: Path) -> str:
    (_folder(reg) / "checksums.json").write_text("[" * 5000 + "]" * 5000)
    return "checksums.json"


def index_entry_is_a_string(reg: Path) -> str:
    index = json.loads((reg / "index.json").read_text())
    index["priors"]["tiny-7x7"]["1.1.0"] = "oops"
    (reg / "index.json").write_text(json.dumps(index))
    return "index.json"


def index_files_is_null(reg: Path) -> str:
    """``files: null`` must not skip the index check."""
    index = json.loads((reg / "index.json").read_text())
    index["priors"]["tiny-7x7"]["1.1.0"]["files"] = None
    (reg / "index.json").write_text(json.dumps(index))
    return "index.json"


def card_nested_5000_deep_rehashed(reg: Path) -> str:
    _rewrite_card_text(_folder(reg) / "model.safetensors",
                       lambda t: t[:-1] + ',"deep":' + "[" * 5000 + "]" * 5000 + "}")
    _rehash(reg)
    return "model.safetensors"


def card_nested_40_deep_rehashed(reg: Path) -> str:
    """Deep enough to exhaust recursion in later processing, shallow enough for the JSON parser."""
    _rewrite_card(_folder(reg) / "model.safetensors",
                  lambda c: c["recipe"].update(deep=json.loads("[" * 40 + "]" * 40)))
    _rehash(reg)
    return "model.safetensors"


def card_5000_digit_integer_rehashed(reg: Path) -> str:
    _rewrite_card_text(_folder(reg) / "model.safetensors", lambda t: re.sub(r'"epochs":\s*\d+', '"epochs":' + "9" * 5000, t))
    _rehash(reg)
    return "model.safetensors"


def card_40_digit_integer_rehashed(reg: Path) -> str:
    _rewrite_card(_folder(reg) / "model.safetensors", lambda c: c["metrics"].update(heldout_elbo=10**40))
    _rehash(reg)
    return "model.safetensors"


def header_metadata_nested_5000_deep_rehashed(reg: Path) -> str:
    p = _folder(reg) / "model.safetensors"
    header = p.read_bytes()[8:_header_len(p)].decode()
    _rewrite_header(p, header[:-1] + ',"x":' + "{\"a\":" * 5000 + "1" + "}" * 5000 + "}")
    _rehash(reg)
    return "model.safetensors"


def header_metadata_is_a_list_rehashed(reg: Path) -> str:
    p = _folder(reg) / "model.safetensors"
    header = json.loads(p.read_bytes()[8:_header_len(p)])
    header["__metadata__"] = [header["__metadata__"]]
    _rewrite_header(p, json.dumps(header))
    _rehash(reg)
    return "model.safetensors"


def weights_is_a_fifo(reg: Path) -> str:
    p = _folder(reg) / "model.safetensors"
    p.unlink()
    os.mkfifo(p)
    return "model.safetensors"


def weights_is_a_directory(reg: Path) -> str:
    p = _folder(reg) / "model.safetensors"
    p.unlink()
    p.mkdir()
    return "model.safetensors"


def weights_is_a_symlink_loop(reg: Path) -> str:
    p = _folder(reg) / "model.safetensors"
    p.unlink()
    p.symlink_to(p.name)
    return "model.safetensors"


def readme_is_a_fifo(reg: Path) -> str:
    p = _folder(reg) / "README.md"
    p.unlink()
    os.mkfifo(p)
    return "README.md"


class _Boobytrap:
    """Unpickling this writes a marker file: proof that a pickle was (never) loaded."""

    marker: Path | None = None

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


_MARKER = Path("/tmp") / "dwp-hub-test-pickle-was-loaded"  # set per test below
_b = _Boobytrap()
_b.marker = _MARKER
_EVIL_PICKLE = pickle.dumps(_b)  # written to disk by the tests, never loaded by them or by dwp-hub

VARIANTS = [
    truncated_weights, empty_weights, flipped_tensor_byte, flipped_last_byte, flipped_header_byte, flipped_header_length,
    edited_card_metric, edited_card_weights_sha, swapped_weights, swapped_readme, swapped_samples,
    swapped_whole_folder_contents, missing_readme, missing_samples, missing_weights, missing_latents, modified_latents,
    extra_file, extra_pickle, extra_optional_file, extra_directory, edited_checksums, garbage_checksums,
    checksums_lists_unknown_file, checksums_drops_readme, edited_index, index_points_at_other_version,
    truncated_weights_rehashed, flipped_tensor_byte_rehashed, broken_header_json_rehashed,
    edited_card_weights_sha_rehashed, edited_card_arch_rehashed, edited_card_schema_rehashed,
    swapped_weights_rehashed, pickle_as_weights_rehashed,
    edited_card_activation_rehashed, downgraded_weights_scope_rehashed, checksums_is_a_list,
    checksums_value_is_a_number, checksums_nested_5000_deep, index_entry_is_a_string, index_files_is_null,
    card_nested_5000_deep_rehashed, card_nested_40_deep_rehashed, card_5000_digit_integer_rehashed,
    card_40_digit_integer_rehashed, header_metadata_nested_5000_deep_rehashed, header_metadata_is_a_list_rehashed,
    weights_is_a_fifo, weights_is_a_directory, weights_is_a_symlink_loop, readme_is_a_fifo,
]
_INDEX_ONLY = {edited_index, index_points_at_other_version, index_entry_is_a_string, index_files_is_null}


def _pattern(files: str) -> str:
    """``a|b`` (file names) -> a regex matching any of them literally."""
    return "|".join(re.escape(f) for f in files.split("|"))


@pytest.fixture(autouse=True)
def _no_marker() -> None:
    _MARKER.unlink(missing_ok=True)
    yield
    assert not _MARKER.exists(), "a pickle was unpickled"


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda f: f.__name__)
def test_registry_load_refuses(tiny_registry: Path, variant: Callable[[Path], str]) -> None:
    assert dwp_hub.load("tiny-7x7").card.version == "1.1.0"
    bad_file = _pattern(variant(tiny_registry))
    with pytest.raises((IntegrityError, CardError), match=bad_file):
        dwp_hub.load("tiny-7x7")  # the newest version is tampered: no fallback to 1.0.0
    with pytest.raises((IntegrityError, CardError), match=bad_file):
        dwp_hub.load("tiny-7x7@1.1.0")
    res = CliRunner().invoke(app, ["verify", "tiny-7x7@1.1.0"], env={"COLUMNS": "400"})
    assert res.exit_code == 1 and "Unexpected error" not in res.stderr and "Traceback" not in res.output
    assert re.search(bad_file, res.stderr), res.stderr  # 'dwp-hub verify' names the tampered file


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v not in _INDEX_ONLY], ids=lambda f: f.__name__)
def test_bare_folder_load_refuses(tiny_registry: Path, variant: Callable[[Path], str]) -> None:
    """The same folder verified against its own checksums.json only (how Hub snapshots load)."""
    bad_file = _pattern(variant(tiny_registry))
    with pytest.raises((IntegrityError, CardError), match=bad_file):
        load_folder(_folder(tiny_registry), name="tiny-7x7", version="1.1.0")


def test_untouched_versions_still_load(tiny_registry: Path) -> None:
    missing_readme(tiny_registry)
    assert dwp_hub.load("tiny-7x7@1.0.0").card.version == "1.0.0"
    assert dwp_hub.load("tiny-5x5").card.name == "tiny-5x5"


# -- documented, harmless variants ---------------------------------------------------------------
def test_hidden_dotfiles_are_ignored(tiny_registry: Path) -> None:
    folder = _folder(tiny_registry)
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    (folder / ".README.md.swp").write_bytes(b"\0\1")
    (folder / ".cache").mkdir()
    assert dwp_hub.load("tiny-7x7").card.version == "1.1.0"
    assert load_folder(folder).card.version == "1.1.0"


def test_missing_checksums_json_in_registry_is_tolerated(tiny_registry: Path) -> None:
    folder = _folder(tiny_registry)
    (folder / "checksums.json").unlink()
    assert dwp_hub.load("tiny-7x7").card.version == "1.1.0"  # the index still verifies every file
    flipped_tensor_byte(tiny_registry)
    with pytest.raises(IntegrityError, match="model.safetensors"):
        dwp_hub.load("tiny-7x7")


def test_missing_checksums_json_in_bare_folder_is_refused(tiny_registry: Path) -> None:
    folder = _folder(tiny_registry)
    (folder / "checksums.json").unlink()
    with pytest.raises(IntegrityError, match="checksums.json"):
        load_folder(folder)


def test_consistent_rewrite_of_harmless_metadata_is_accepted(tiny_registry: Path) -> None:
    """Documented limit: see the module docstring."""
    _rewrite_card(_folder(tiny_registry) / "model.safetensors", lambda c: c.update(description="Edited."))
    _rehash(tiny_registry)
    assert dwp_hub.load("tiny-7x7").card.description == "Edited."
