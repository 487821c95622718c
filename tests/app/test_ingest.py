from pathlib import Path

from app.ingest import ingest_paths, safe_name


def make_pdf(path: Path, text: str) -> None:
    """A one-page PDF with real text, written by hand (no extra dependency)."""
    stream = f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))


def test_safe_name_strips_directories_and_tricks():
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("..\\..\\win.ini") == "win.ini"
    assert safe_name(".hidden.md") == "hidden.md"
    assert safe_name("a b;rm -rf.md") == "a_b_rm_-rf.md"
    assert safe_name("") == "document"


def test_text_markdown_and_pdf_are_added(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("土地庙能休息。", "utf-8")
    (src / "b.md").write_text("---\ntitle: B\n---\n正文。", "utf-8")
    make_pdf(src / "c.pdf", "Guangzhi wields twin blades")
    user = tmp_path / "user"
    report = ingest_paths([src], user)
    assert all(line.startswith("added") for line in report), report
    assert sorted(p.name for p in user.iterdir()) == ["a.txt", "b.md", "c.txt"]
    assert "Guangzhi wields twin blades" in (user / "c.txt").read_text("utf-8")


def test_same_name_twice_keeps_both(tmp_path: Path):
    f = tmp_path / "n.txt"
    f.write_text("一。", "utf-8")
    user = tmp_path / "user"
    ingest_paths([f], user)
    ingest_paths([f], user)
    assert sorted(p.name for p in user.iterdir()) == ["n-2.txt", "n.txt"]


def test_bad_files_are_skipped_with_reasons(tmp_path: Path):
    (tmp_path / "broken.md").write_bytes(b"\xff\xfe\x00bad")
    (tmp_path / "fake.pdf").write_bytes(b"not a pdf at all")
    (tmp_path / "pic.png").write_bytes(b"\x89PNG")
    user = tmp_path / "user"
    report = ingest_paths(
        [tmp_path / "broken.md", tmp_path / "fake.pdf", tmp_path / "pic.png", tmp_path / "gone.txt"], user
    )
    assert len(report) == 4 and all(line.startswith("skipped") for line in report)
    assert "UTF-8" in report[1] or "UTF-8" in report[0]
    assert any("cannot read PDF" in line for line in report)
    assert any("unsupported type .png" in line for line in report)
    assert any("no such file" in line for line in report)
    assert list(user.iterdir()) == []
