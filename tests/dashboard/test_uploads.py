"""The managed upload folder: generated names, allowed extensions, size limit, no traversal."""

from __future__ import annotations

import base64
import io
import pickle
import re
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.uploads import (
    MAX_FILES,
    UploadError,
    UploadFolder,
    default_folder,
    format_size,
)

TFLITE_HEAD = b"\x1c\x00\x00\x00TFL3\x14\x00"  # a FlatBuffer with TFLite's identifier


def data_url(raw: bytes, mime: str = "application/octet-stream") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_a_file_is_stored_under_a_generated_folder_with_a_clean_name(tmp_path: Path) -> None:
    folder = UploadFolder(tmp_path / "up")
    first = folder.save("logs", data_url(b'{"a": 1}\n'), "my tuning log.jsonl")
    second = folder.save("logs", data_url(b'{"a": 2}\n'), "my tuning log.jsonl")
    assert re.fullmatch(r"[0-9a-f]{32}", first.id) and first.id != second.id
    (item,) = first.files
    assert item.path == tmp_path / "up" / "logs" / first.id / "my_tuning_log.jsonl"
    assert item.path.read_bytes() == b'{"a": 1}\n'
    assert item.name == "my tuning log.jsonl" and item.size == 9
    assert second.files[0].path.read_bytes() == b'{"a": 2}\n'
    assert folder.find("logs", first.id).files[0].path == item.path
    assert folder.contains(item.path) and not folder.contains(tmp_path / "elsewhere.log")


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd.log",
        "..\\..\\windows\\evil.json",
        "/etc/cron.d/job.txt",
        "a/b/../../../c.jsonl",
        "..log",
        "name\x00with nul.log",
        " spaced .log",
        "ünïcødé résumé.json",
    ],
)
def test_no_file_name_leaves_the_folder(tmp_path: Path, name: str) -> None:
    folder = UploadFolder(tmp_path / "up")
    upload = folder.save("logs", data_url(b"x\n"), name)
    (item,) = upload.files
    assert item.path.parent == tmp_path / "up" / "logs" / upload.id
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.(log|json|jsonl|txt)", item.path.name), item.path.name
    assert files_under(tmp_path) == [item.path]


@settings(max_examples=60, deadline=None)
@given(name=st.text(min_size=0, max_size=80), ext=st.sampled_from([".log", ".JSON", ".txt"]))
def test_any_name_is_stored_inside_the_folder_or_refused(name: str, ext: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "up"
        folder = UploadFolder(root)
        try:
            upload = folder.save("logs", data_url(b"1\n"), name + ext)
        except UploadError as exc:  # only a name whose last part has no allowed extension
            assert "only .json, .jsonl, .log or .txt files" in str(exc)
            assert files_under(Path(tmp)) == []
            return
        (item,) = upload.files
        assert item.path.resolve().parent.parent.parent == root.resolve()
        assert re.fullmatch(r"[A-Za-z0-9_-]+\.[a-z]+", item.path.name)


def test_only_the_extensions_of_the_use_are_accepted(tmp_path: Path) -> None:
    folder = UploadFolder(tmp_path)
    with pytest.raises(UploadError, match=r"run\.exe: only \.json, \.jsonl, \.log or \.txt"):
        folder.save("logs", data_url(b"x"), "run.exe")
    with pytest.raises(UploadError, match=r"net\.log: only \.onnx, \.tflite or \.keras files"):
        folder.save("models", data_url(b"x"), "net.log")
    with pytest.raises(UploadError, match="only"):
        folder.save("models", data_url(b"x"), "no-extension")
    model = folder.save("models", data_url(b"\x08\x01"), "Net.ONNX")
    assert model.files[0].path.name == "Net.onnx"
    with pytest.raises(ValueError, match="unknown upload kind"):
        folder.save("pictures", data_url(b"x"), "a.png")
    assert files_under(tmp_path) == [model.files[0].path]


def test_the_size_limit_applies_to_the_decoded_bytes(tmp_path: Path) -> None:
    folder = UploadFolder(tmp_path, limit=1024)
    assert folder.save("logs", data_url(b"a" * 1024), "exact.log").size == 1024
    with pytest.raises(UploadError) as raised:
        folder.save("logs", data_url(b"a" * 2048), "big.log")
    assert str(raised.value) == "big.log is 2 KiB; uploads are limited to 1 KiB."
    # Judged from the length before decoding: a huge upload is never decoded.
    with pytest.raises(UploadError, match="is 3 KiB; uploads are limited to 1 KiB"):
        folder.save("logs", "data:text/plain;base64," + "@" * 4096, "huge.log")
    with pytest.raises(UploadError, match=r"2 files are 1\.2 KiB together; .* limited to 1 KiB"):
        folder.save("logs", [data_url(b"a" * 600), data_url(b"b" * 600)], ["a.log", "b.log"])
    assert len(files_under(tmp_path)) == 1


def test_empty_undecodable_and_missing_uploads_are_refused(tmp_path: Path) -> None:
    folder = UploadFolder(tmp_path)
    cases = {
        "empty.log is empty.": data_url(b""),
        "bad.log: the upload could not be read (damaged base64 data).": (
            "data:text/plain;base64,@@@@"
        ),
        "bad.log: the upload could not be read (not base64 file data).": "plain text",
        "bad.log: no file content arrived.": "",
    }
    for message, contents in cases.items():
        name = "empty.log" if "empty" in message else "bad.log"
        with pytest.raises(UploadError) as raised:
            folder.save("logs", contents, name)
        assert str(raised.value) == message
    with pytest.raises(UploadError, match="No file was uploaded"):
        folder.save("logs", None, None)
    with pytest.raises(UploadError, match=f"upload at most {MAX_FILES}"):
        folder.save("logs", [data_url(b"x")] * (MAX_FILES + 1), ["a.log"] * (MAX_FILES + 1))
    assert files_under(tmp_path) == []


def test_several_files_share_one_folder_with_distinct_names(tmp_path: Path) -> None:
    folder = UploadFolder(tmp_path)
    upload = folder.save(
        "logs",
        [data_url(b"1"), data_url(b"2"), data_url(b"3")],
        ["a/run.log", "b/run.log", "database_workload.json"],
    )
    assert [f.path.name for f in upload.files] == ["run.log", "run_2.log", "database_workload.json"]
    assert {f.path.parent for f in upload.files} == {upload.folder}
    assert upload.describe(f"{upload.files[1].path}: line 1") == "run.log: line 1"
    folder.discard(upload)
    assert files_under(tmp_path) == []


def test_finding_an_upload_takes_only_a_well_formed_existing_id(tmp_path: Path) -> None:
    folder = UploadFolder(tmp_path)
    saved = folder.save("models", data_url(TFLITE_HEAD), "m.tflite")
    assert folder.find("models", saved.id).files[0].path == saved.files[0].path
    for bad in ["../models", "0" * 32, saved.id.upper(), None, 7, saved.id + "/.."]:
        with pytest.raises(UploadError, match="no longer there"):
            folder.find("models", bad)
    with pytest.raises(UploadError):
        folder.find("logs", saved.id)  # another kind's folder


def test_default_folder_sits_beside_the_store_file(tmp_path: Path) -> None:
    assert default_folder(tmp_path / "runs.db") == tmp_path / "runs-uploads"
    assert default_folder(str(tmp_path / "a.sqlite")) == tmp_path / "a-uploads"
    assert default_folder(None) is None and default_folder(":memory:") is None


def test_a_temporary_folder_is_made_on_first_use_and_removed_on_close(tmp_path: Path) -> None:
    temporary = UploadFolder()
    upload = temporary.save("logs", data_url(b"x"), "x.log")
    root = upload.folder.parent.parent
    assert root.is_dir() and root.name.startswith("tuneloom-uploads-")
    temporary.close()
    assert not root.exists()
    kept = UploadFolder(tmp_path / "kept")
    assert not (tmp_path / "kept").exists()  # nothing is created before an upload
    kept.save("logs", data_url(b"x"), "x.log")
    kept.close()
    assert len(files_under(tmp_path / "kept")) == 1


def test_limits_and_sizes_in_words() -> None:
    assert format_size(512) == "512 bytes"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(64 * 1024 * 1024) == "64 MiB"
    assert format_size(3 * 1024**3) == "3 GiB"
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="upload limit"):
            UploadFolder(limit=bad)  # type: ignore[arg-type]


def test_a_folder_that_cannot_be_written_gives_a_clear_message(tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the folder should be")
    folder = UploadFolder(blocker / "uploads")
    with pytest.raises(UploadError, match=r"could not be stored on the server \("):
        folder.save("logs", data_url(b"x"), "x.log")
    assert blocker.read_text() == "a file where the folder should be"


def keras_bytes(*members: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in members:
            archive.writestr(name, "{}")
    return out.getvalue()


def test_model_uploads_must_look_like_their_format_and_never_be_pickles(tmp_path: Path) -> None:
    folder = UploadFolder(tmp_path)
    pickled = pickle.dumps({"weights": [1, 2, 3]})
    refused = {
        "net.onnx": (pickled, "net.onnx is a Python pickle; pickles are never loaded"),
        "net.keras": (pickled, "net.keras is a Python pickle"),
        "m.onnx": (b"hello world", "m.onnx is not an ONNX model"),
        "m.tflite": (b"\x08\x07onnx-ish", "m.tflite is not a TFLite model"),
        "m.keras": (b"PK not really", "m.keras is not a Keras model"),
        "z.keras": (keras_bytes("metadata.json"), "z.keras is not a Keras model"),
        "t.keras": (
            keras_bytes("config.json", "archive/data.pkl"),
            r"t.keras holds a Python pickle \(archive/data.pkl\)",
        ),
    }
    for name, (raw, reason) in refused.items():
        with pytest.raises(UploadError, match=reason):
            folder.save("models", data_url(raw), name)
    assert files_under(tmp_path) == []
    kept = [
        folder.save("models", data_url(raw), name).files[0].path.name
        for name, raw in [
            ("a.onnx", b"\x08\x08\x12\x08tuneloom"),
            ("b.tflite", TFLITE_HEAD),
            ("c.keras", keras_bytes("metadata.json", "config.json", "model.weights.h5")),
        ]
    ]
    assert kept == ["a.onnx", "b.tflite", "c.keras"]
    # Logs are not models: their content is the importers' business.
    assert folder.save("logs", data_url(pickled), "odd.log").size == len(pickled)
