import numpy as np
import pytest

from sidlive import frames as F


def _random_frames(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return F.Frames(regs=rng.integers(0, 256, size=(n, 25), dtype=np.uint8),
                    title="t", author="a", chip="8580", extra={"speed": "vbi"})


def test_canonical_bits_cleared():
    fr = F.Frames(regs=np.full((1, 25), 0xFF, dtype=np.uint8))
    assert fr.regs[0, 0x03] == 0x0F and fr.regs[0, 0x0A] == 0x0F and fr.regs[0, 0x11] == 0x0F
    assert fr.regs[0, 0x15] == 0x07
    assert fr.regs[0, 0x04] == 0xFF and fr.regs[0, 0x18] == 0xFF


def test_write_order_puts_control_registers_last():
    assert sorted(F.WRITE_ORDER) == list(range(25))
    assert F.WRITE_ORDER[-3:] == (0x04, 0x0B, 0x12)


@pytest.mark.parametrize("ext", [".regs", ".txt"])
def test_roundtrip(tmp_path, ext):
    fr = _random_frames()
    p = tmp_path / f"x{ext}"
    F.save(fr, p)
    back = F.load(p)
    assert np.array_equal(back.regs, fr.regs)
    if ext == ".regs":
        assert back.meta() == fr.meta()


def test_txt_matches_sid_gpt_layout(tmp_path):
    line = "B0080005410A306011C0064108200016800D41082000B4031F"
    p = tmp_path / "g.txt"
    p.write_text(line + "\n" + line.lower() + "\n<end>\n")
    fr = F.load(p)
    assert len(fr) == 2
    assert fr.regs[0, 0] == 0xB0 and fr.regs[0, 24] == 0x1F
    out = tmp_path / "o.txt"
    F.save(fr, out)
    # canonical: $03 "05" stays, $15 0x00 stays; first line re-emitted verbatim
    assert out.read_text().splitlines()[0] == line
    assert out.read_text().splitlines()[-1] == "<end>"


def test_txt_errors_name_line_and_column(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("00" * 25 + "\n" + "0G" + "00" * 24 + "\n")
    with pytest.raises(F.FramesFormatError, match=r"bad.txt: line 2, column 2"):
        F.load(p)
    p.write_text("00" * 24 + "\n")
    with pytest.raises(F.FramesFormatError, match=r"line 1: 48 characters, expected 50"):
        F.load(p)


def test_regs_errors(tmp_path):
    fr = _random_frames()
    p = tmp_path / "x.regs"
    F.save(fr, p)
    blob = p.read_bytes()
    (tmp_path / "trunc.regs").write_bytes(blob[:-3])
    with pytest.raises(F.FramesFormatError, match=r"trunc.regs: size is"):
        F.load(tmp_path / "trunc.regs")
    (tmp_path / "magic.regs").write_bytes(b"XXXX" + blob[4:])
    with pytest.raises(F.FramesFormatError, match=r"magic.regs: offset 0: magic"):
        F.load(tmp_path / "magic.regs")
    (tmp_path / "short.regs").write_bytes(b"SL")
    with pytest.raises(F.FramesFormatError, match=r"shorter than"):
        F.load(tmp_path / "short.regs")
    with pytest.raises(F.FramesFormatError, match=r"unknown frames extension"):
        F.load(tmp_path / "x.wav")


def test_bad_metadata_values():
    with pytest.raises(ValueError, match="chip: .6582. is not one of 6581, 8580"):
        F.Frames(regs=np.zeros((1, 25), np.uint8), chip="6582")
    with pytest.raises(ValueError, match=r"shape \(N, 25\)"):
        F.Frames(regs=np.zeros((3, 24), np.uint8))
