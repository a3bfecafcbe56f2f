"""The ``fastgnn word2vec`` and ``fastgnn deepwalk`` subcommands, through ``fastgnn.cli.main``."""
import numpy as np
import pytest

cli = pytest.importorskip("fastgnn.cli")

from fastgnn.io import load_word2vec_format  # noqa: E402



@pytest.fixture(autouse=True)
def _registered():
    # fastgnn/cli.py must list this module among those that add subcommands
    assert "fastgnn.cli_word2vec" in cli._SUBCOMMAND_MODULES


CORPUS = "king queen royal palace\ndog cat pet animal\n" * 80


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text(CORPUS)
    return p


@pytest.fixture
def vectors(corpus, tmp_path, _registered):
    out = tmp_path / "vec.txt"
    assert cli.main(["word2vec", "train", str(corpus), "-o", str(out), "--dim", "8", "--min-count", "1",
                     "--epochs", "8", "--sample", "0", "--workers", "1", "--seed", "3", "-q"]) == 0
    return out


def test_train_writes_vectors(vectors, corpus, tmp_path, capsys):
    kv = load_word2vec_format(vectors)
    assert len(kv) == 8 and kv.vector_size == 8
    out = tmp_path / "vec.bin"
    model = tmp_path / "m.npz"
    assert cli.main(["word2vec", "train", str(corpus), "-o", str(out), "--cbow", "--dim", "4", "--min-count", "1",
                     "--binary", "--workers", "1", "--save-model", str(model)]) == 0
    assert "words/s" in capsys.readouterr().out
    assert load_word2vec_format(out, binary=True).vector_size == 4 and model.exists()


def test_similar_and_analogy(vectors, capsys):
    assert cli.main(["word2vec", "similar", str(vectors), "king", "-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and {ln.split("\t")[0] for ln in lines} == {"queen", "royal", "palace"}
    assert cli.main(["word2vec", "analogy", str(vectors), "king", "queen", "dog", "-k", "2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and not {"king", "queen", "dog"} & {ln.split("\t")[0] for ln in out}


def test_evaluate(vectors, tmp_path, capsys):
    q = tmp_path / "q.txt"
    q.write_text(": s\nking queen dog cat\nking queen zebra cat\n")
    pairs = tmp_path / "p.tsv"
    pairs.write_text("king\tqueen\t9\nking\tdog\t1\ncat\tdog\t8\nzebra\tcat\t3\n")
    assert cli.main(["word2vec", "evaluate", str(vectors), "--analogies", str(q), "--pairs", str(pairs)]) == 0
    out = capsys.readouterr().out
    assert "Total accuracy" in out and "1 skipped" in out and "oov\t25.0%" in out


def test_deepwalk_with_labels(tmp_path, capsys):
    edges = tmp_path / "e.tsv"
    lines = [f"{i}\t{j}" for b in (0, 8) for i in range(b, b + 8) for j in range(i + 1, b + 8)] + ["7\t8"]
    edges.write_text("\n".join(lines) + "\n")
    labels = tmp_path / "l.tsv"
    labels.write_text("".join(f"{i}\t{int(i >= 8)}\n" for i in range(16)))
    out = tmp_path / "emb.txt"
    assert cli.main(["deepwalk", str(edges), "-o", str(out), "--walks", "5", "--length", "10", "--dim", "8",
                     "--window", "3", "--workers", "1", "--labels", str(labels), "--p", "0.5", "--q", "2"]) == 0
    text = capsys.readouterr().out
    assert "macro-F1" in text
    kv = load_word2vec_format(out)
    assert kv.index_to_key == [str(i) for i in range(16)] and np.isfinite(kv.vectors).all()


@pytest.mark.parametrize("argv_tail,match", [
    (["similar", "{vec}", "zebra"], "zebra"),
    (["analogy", "{vec}", "king", "zebra", "dog"], "zebra"),
    (["similar", "{missing}", "king"], "no such file"),
    (["similar", "{empty}", "king"], "empty"),
    (["similar", "{corpus}", "king"], "vectors"),
    (["train", "{missing}", "-o", "{out}"], "no such file"),
    (["train", "{empty}", "-o", "{out}"], "empty"),
    (["train", "{corpus}", "-o", "{out}", "--min-count", "1000"], "min_count=1000"),
    (["train", "{corpus}", "-o", "{out}", "--seed", "-3"], "seed"),
    (["train", "{corpus}", "-o", "{missing}/x.txt"], "directory"),
    (["evaluate", "{vec}"], "--analogies"),
    (["evaluate", "{vec}", "--pairs", "{missing}"], "no such file"),
])
def test_user_errors_exit_2_with_one_line(argv_tail, match, vectors, corpus, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    subs = {"vec": vectors, "missing": tmp_path / "missing", "empty": empty, "corpus": corpus,
            "out": tmp_path / "o.txt"}
    argv = ["word2vec"] + [a.format(**subs) for a in argv_tail]
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err and "Traceback" not in err


def test_deepwalk_user_errors(tmp_path, capsys):
    assert cli.main(["deepwalk", str(tmp_path / "none.tsv"), "-o", str(tmp_path / "x")]) == 2
    bad = tmp_path / "bad.tsv"
    bad.write_text("0 x\n")
    assert cli.main(["deepwalk", str(bad), "-o", str(tmp_path / "x")]) == 2
    edges = tmp_path / "e.tsv"
    edges.write_text("0 1\n1 2\n")
    labels = tmp_path / "l.tsv"
    labels.write_text("0\t0\n9\t1\n")
    assert cli.main(["deepwalk", str(edges), "-o", str(tmp_path / "x"), "--labels", str(labels)]) == 2
    err = capsys.readouterr().err
    assert err.count("fastgnn: error:") == 3 and "Traceback" not in err
    assert cli.main(["deepwalk", str(edges), "-o", str(tmp_path / "x"), "--dim", "0"]) == 2  # argparse
