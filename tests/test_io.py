"""word2vec C / gensim vector files: round trips, both binary dialects, gensim interop, bad files."""
import numpy as np
import pytest

from fastgnn import KeyedVectors
from fastgnn.io import load_word2vec_format, save_word2vec_format


@pytest.fixture
def kv(rng):
    keys = ["the", "naïve", "café", "x", "Δ"]
    return KeyedVectors(keys, rng.standard_normal((5, 7)).astype(np.float32))


@pytest.mark.parametrize("binary", [False, True])
def test_round_trip_is_exact(kv, tmp_path, binary):
    p = tmp_path / "v.bin"
    kv.save_word2vec_format(p, binary=binary)
    back = KeyedVectors.load_word2vec_format(p, binary=binary)
    assert back.index_to_key == kv.index_to_key
    np.testing.assert_array_equal(back.vectors, kv.vectors)
    assert load_word2vec_format(p, binary=None).index_to_key == kv.index_to_key  # sniffed


def test_text_layout(tmp_path):
    p = tmp_path / "v.txt"
    save_word2vec_format(p, ["a", "b"], np.array([[0.5, -1.25], [3.0, 1e-8]], np.float32))
    assert p.read_text().splitlines() == ["2 2", "a 0.5 -1.25", "b 3 9.99999994e-09"]


def test_binary_layout_is_word2vec_c(tmp_path):
    p = tmp_path / "v.bin"
    vec = np.array([[1.5, -2.0]], np.float32)
    save_word2vec_format(p, ["w"], vec, binary=True)
    assert p.read_bytes() == b"1 2\nw " + vec[0].astype("<f4").tobytes() + b"\n"


def test_reads_gensim_binary_without_newlines(tmp_path, rng):
    vec = rng.standard_normal((3, 4)).astype(np.float32)
    body = b"".join(k.encode() + b" " + v.tobytes() for k, v in zip(["a", "bb", "c"], vec))
    p = tmp_path / "g.bin"
    p.write_bytes(b"3 4\n" + body)
    back = load_word2vec_format(p, binary=True)
    assert back.index_to_key == ["a", "bb", "c"]
    np.testing.assert_array_equal(back.vectors, vec)


def test_float64_text_round_trip_and_limit(tmp_path, rng):
    vec = rng.standard_normal((4, 3))
    p = tmp_path / "v.txt"
    save_word2vec_format(p, ["a", "b", "c", "d"], vec)
    back = load_word2vec_format(p, dtype=np.float64)
    np.testing.assert_array_equal(back.vectors, vec)
    assert len(load_word2vec_format(p, limit=2)) == 2


def test_integer_keys_are_written_as_text(tmp_path):
    p = tmp_path / "v.txt"
    save_word2vec_format(p, [0, 1], np.ones((2, 2), np.float32))
    assert load_word2vec_format(p).index_to_key == ["0", "1"]


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        load_word2vec_format(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_word2vec_format(empty)
    bad = tmp_path / "bad.txt"
    bad.write_text("hello world\n")
    with pytest.raises(ValueError, match="header"):
        load_word2vec_format(bad)
    short = tmp_path / "short.txt"
    short.write_text("2 3\na 1 2 3\n")
    with pytest.raises(ValueError, match="ends after 1 of 2"):
        load_word2vec_format(short)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("1 3\na 1 2\n")
    with pytest.raises(ValueError, match="has 2 values, expected 3"):
        load_word2vec_format(wrong)
    nan = tmp_path / "nan.txt"
    nan.write_text("1 2\na nan 1\n")
    with pytest.raises(ValueError, match="non-finite"):
        load_word2vec_format(nan)
    trunc = tmp_path / "t.bin"
    trunc.write_bytes(b"2 2\na " + np.zeros(2, np.float32).tobytes() + b"\nb " + b"\x00" * 3)
    with pytest.raises(ValueError, match="ends after 1 of 2"):
        load_word2vec_format(trunc, binary=True)
    dup = tmp_path / "dup.txt"
    dup.write_text("2 1\na 1\na 2\n")
    with pytest.raises(ValueError, match="duplicate"):
        load_word2vec_format(dup)


def test_bad_save_arguments(tmp_path):
    with pytest.raises(ValueError, match="keys"):
        save_word2vec_format(tmp_path / "x", ["a b"], np.ones((1, 2)))
    with pytest.raises(ValueError, match="keys"):
        save_word2vec_format(tmp_path / "x", ["a"], np.ones((2, 2)))
    with pytest.raises(ValueError, match="vectors"):
        save_word2vec_format(tmp_path / "x", ["a"], np.array([[np.inf, 1.0]]))
    with pytest.raises(ValueError, match="vectors"):
        save_word2vec_format(tmp_path / "x", ["a"], np.ones(2))
    with pytest.raises(ValueError, match="limit"):
        load_word2vec_format(tmp_path / "x", limit=-1)


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_interop(kv, tmp_path, binary):
    gensim_kv = pytest.importorskip("gensim.models.keyedvectors")
    ours = tmp_path / "ours"
    kv.save_word2vec_format(ours, binary=binary)
    g = gensim_kv.KeyedVectors.load_word2vec_format(str(ours), binary=binary)
    assert list(g.index_to_key) == kv.index_to_key
    np.testing.assert_array_equal(g.vectors, kv.vectors)
    theirs = tmp_path / "theirs"
    g.save_word2vec_format(str(theirs), binary=binary)
    back = load_word2vec_format(theirs, binary=binary)
    assert back.index_to_key == kv.index_to_key
    np.testing.assert_array_equal(back.vectors, kv.vectors)
