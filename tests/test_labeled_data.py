"""Labeled data: readers for CoNLL / CoNLL-U / HF datasets, label sets, alignment and its inverse."""

from __future__ import annotations

import re

import datasets
import numpy as np
import pytest
import torch

from madx.errors import ConfigError, DataError
from tagging.alignment import ALIGNMENT_COLUMNS, IGNORE_INDEX, MODEL_COLUMNS, encode_tagged, predictions_to_tags
from tagging.corpus import TaggedCorpus, TaggedSentence
from tagging.readers import load_labeled, read_conll, read_conllu
from tagging.scheme import LabelSet, check_iob2, check_known_tags, detect_scheme
from tagging.sources import LabeledSource

datasets.disable_progress_bars()

WIKIANN_NAMES = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]

CONLL_TEXT = """\
-DOCSTART- -X- -X- O

Maria NNP B-NP B-PER
Schmidt NNP I-NP I-PER
works VBZ B-VP O


in IN B-PP O
Geneva NNP B-NP B-LOC
-DOCSTART- -X- -X- O
UN NNP B-NP B-ORG


"""

CONLLU_TEXT = """\
# sent_id = 1
# text = Maria's in Geneva.
1-2\tMaria's\t_\t_\t_\t_\t_\t_\t_\t_
1\tMaria\tMaria\tPROPN\tNNP\t_\t3\tnsubj\t_\tNER=B-PER
2\t's\tbe\tAUX\tVBZ\t_\t3\tcop\t_\tNER=O
3\tin\tin\tADP\tIN\t_\t0\troot\t_\tNER=O
3.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t0:root\t_
4\tGeneva\tGeneva\tPROPN\tNNP\t_\t3\tobl\t_\tNER=B-LOC|SpaceAfter=No
5\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\tNER=O

# sent_id = 2
1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\tNER=O
"""


def write(tmp_path, name: str, text: str | bytes):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------- CoNLL


def test_conll_skips_docstart_and_blank_lines_and_reads_the_last_column(tmp_path):
    path = write(tmp_path, "train.conll", CONLL_TEXT)
    corpus = load_labeled(LabeledSource(format="conll", path=str(path)))

    assert corpus.source == str(path)
    assert [s.tokens for s in corpus] == [["Maria", "Schmidt", "works"], ["in", "Geneva"], ["UN"]]
    assert [s.tags for s in corpus] == [["B-PER", "I-PER", "O"], ["O", "B-LOC"], ["B-ORG"]]
    assert corpus[0].lines == [3, 4, 5]
    assert corpus[2].lines == [11]  # a -DOCSTART- line ends a sentence even without a blank line
    assert corpus[1].where(1) == f"{path}:9"
    assert corpus.n_words == 6


def test_conll_reads_a_chosen_column_tabs_crlf_and_bom(tmp_path):
    text = "\ufeffMaria\tNNP\tB-PER\r\nSchmidt \t NNP\tI-PER\r\n\r\n"
    path = write(tmp_path, "pos.tsv", text)
    corpus = read_conll(path, tag_column=1)
    assert corpus[0].tokens == ["Maria", "Schmidt"]
    assert corpus[0].tags == ["NNP", "NNP"]


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("a DT O\nb NN\n", 2, "found 2 columns, expected 3 like the first word line (line 1)"),
        ("a DT O\n\nb NN O extra\n", 3, "found 4 columns, expected 3"),
        ("\n\nlonely\n", 3, "expected a token and its tag"),
    ],
)
def test_conll_bad_line_names_file_line_and_expectation(tmp_path, text, line, expected):
    path = write(tmp_path, "bad.conll", text)
    with pytest.raises(DataError, match=re.escape(f"{path}:{line}: ")) as caught:
        read_conll(path)
    assert expected in str(caught.value)


def test_conll_tag_column_outside_the_line_is_reported(tmp_path):
    path = write(tmp_path, "short.conll", "a DT O\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:1: tag_column=5 does not exist")):
        read_conll(path, tag_column=5)


@pytest.mark.parametrize("text", ["", "\n\n  \n", "-DOCSTART- -X- O\n\n"])
def test_conll_without_sentences_is_an_error(tmp_path, text):
    path = write(tmp_path, "empty.conll", text)
    with pytest.raises(DataError, match=re.escape(f"{path}: no sentences found")):
        read_conll(path)


def test_non_utf8_bytes_name_file_line_and_offset(tmp_path):
    path = write(tmp_path, "latin1.conll", "Maria B-PER\n\n".encode() + "Gen\xe8ve B-LOC\n".encode("latin-1"))
    with pytest.raises(DataError, match=re.escape(f"{path}:3: byte 0xe8 at file offset 16 is not valid UTF-8")):
        read_conll(path)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_conll(tmp_path / "nope.conll")


# --------------------------------------------------------------------------------------- CoNLL-U


def test_conllu_skips_comments_ranges_and_empty_nodes(tmp_path):
    path = write(tmp_path, "ud.conllu", CONLLU_TEXT)
    corpus = load_labeled(LabeledSource(format="conllu", path=str(path)))
    assert [s.tokens for s in corpus] == [["Maria", "'s", "in", "Geneva", "."], ["Hi"]]
    assert [s.tags for s in corpus] == [["PROPN", "AUX", "ADP", "PROPN", "PUNCT"], ["INTJ"]]
    assert corpus[0].lines == [4, 5, 6, 8, 9]


@pytest.mark.parametrize(
    ("column", "first_tags"),
    [("xpos", ["NNP", "VBZ", "IN", "NNP", "."]), ("misc:NER", ["B-PER", "O", "O", "B-LOC", "O"])],
)
def test_conllu_tag_column_by_name(tmp_path, column, first_tags):
    path = write(tmp_path, "ud.conllu", CONLLU_TEXT)
    corpus = load_labeled(LabeledSource(format="conllu", path=str(path), tag_column=column))
    assert corpus[0].tags == first_tags


def test_conllu_line_without_ten_columns_names_file_and_line(tmp_path):
    path = write(tmp_path, "bad.conllu", CONLLU_TEXT.replace("3\tin\tin\tADP\tIN\t_\t0\troot\t_\tNER=O", "3 in in ADP"))
    with pytest.raises(DataError, match=re.escape(f"{path}:6: found 1 TAB-separated columns, expected 10")):
        read_conllu(path)


def test_conllu_unspecified_tag_is_an_error(tmp_path):
    path = write(tmp_path, "noxpos.conllu", "1\tHi\thi\tINTJ\t_\t_\t0\troot\t_\t_\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:1: column xpos is '_'")):
        load_labeled(LabeledSource(format="conllu", path=str(path), tag_column="xpos"))


# ---------------------------------------------------------------------------- Hugging Face datasets


@pytest.fixture(scope="module")
def wikiann_dataset() -> datasets.Dataset:
    """Three rows with exactly the hub WikiANN schema (ClassLabel tag ids, langs, spans)."""
    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=WIKIANN_NAMES)),
            "langs": datasets.Sequence(datasets.Value("string")),
            "spans": datasets.Sequence(datasets.Value("string")),
        }
    )
    rows = {
        "tokens": [["Maria", "Schmidt", "anaishi", "Nairobi"], ["Umoja", "wa", "Mataifa"], ["Habari"]],
        "ner_tags": [[1, 2, 0, 5], [3, 4, 4], [0]],
        "langs": [["sw"] * 4, ["sw"] * 3, ["sw"]],
        "spans": [["PER: Maria Schmidt", "LOC: Nairobi"], ["ORG: Umoja wa Mataifa"], []],
    }
    return datasets.Dataset.from_dict(rows, features=features)


EXPECTED_WIKIANN_TAGS = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG"], ["O"]]


def test_hf_saved_dataset_maps_classlabel_ids_to_names(tmp_path, wikiann_dataset):
    wikiann_dataset.save_to_disk(str(tmp_path / "wikiann_sw"))
    corpus = load_labeled(LabeledSource(format="hf", path=str(tmp_path / "wikiann_sw")))
    assert [s.tokens for s in corpus][1] == ["Umoja", "wa", "Mataifa"]
    assert [s.tags for s in corpus] == EXPECTED_WIKIANN_TAGS
    assert corpus[1].where(2) == f"saved dataset {tmp_path / 'wikiann_sw'} [train], row 1, word 2 (0-based)"


def test_hf_saved_dataset_dict_picks_the_split(tmp_path, wikiann_dataset):
    splits = datasets.DatasetDict({"train": wikiann_dataset.select([0]), "test": wikiann_dataset})
    splits.save_to_disk(str(tmp_path / "dd"))
    corpus = load_labeled(LabeledSource(format="hf", path=str(tmp_path / "dd"), split="test"))
    assert [s.tags for s in corpus] == EXPECTED_WIKIANN_TAGS
    with pytest.raises(DataError, match=r"no split 'validation'; the saved dataset has \['train', 'test'\]"):
        load_labeled(LabeledSource(format="hf", path=str(tmp_path / "dd"), split="validation"))


def test_hf_load_dataset_path_on_local_parquet_keeps_classlabels(tmp_path, wikiann_dataset):
    # The hub code path (`load_dataset(name, config, split=...)`), exercised offline through a builder.
    wikiann_dataset.to_parquet(str(tmp_path / "sw-test.parquet"))
    files = {"test": str(tmp_path / "sw-test.parquet")}
    source = LabeledSource(format="hf", name="parquet", data_files=files, split="test")
    corpus = load_labeled(source)
    assert [s.tags for s in corpus] == EXPECTED_WIKIANN_TAGS
    assert corpus.source == "dataset parquet [test]"


def test_hf_load_dataset_json_with_tag_strings_and_custom_columns(tmp_path):
    path = write(tmp_path, "pos.jsonl", '{"words": ["Hi", "there"], "pos": ["INTJ", "ADV"]}\n')
    source = LabeledSource(format="hf", name="json", data_files=str(path), token_column="words", tag_column="pos")
    corpus = load_labeled(source)
    assert corpus[0].tokens == ["Hi", "there"] and corpus[0].tags == ["INTJ", "ADV"]


def test_hf_json_with_bare_ids_is_refused_with_a_hint(tmp_path, wikiann_dataset):
    wikiann_dataset.to_json(str(tmp_path / "ids.jsonl"))  # JSON drops the ClassLabel names
    with pytest.raises(DataError, match="JSON/CSV files lose ClassLabel names"):
        load_labeled(LabeledSource(format="hf", name="json", data_files=str(tmp_path / "ids.jsonl")))


def test_hf_missing_column_and_unreachable_hub_are_data_errors(tmp_path, wikiann_dataset):
    wikiann_dataset.save_to_disk(str(tmp_path / "saved"))
    columns = r"\['tokens', 'ner_tags', 'langs', 'spans'\]"
    with pytest.raises(DataError, match=rf"no column 'upos'; its columns are {columns}"):
        load_labeled(LabeledSource(format="hf", path=str(tmp_path / "saved"), tag_column="upos"))
    with pytest.raises(DataError, match=r"cannot load dataset unimelb-nlp/wikiann \(config sw\) \[test\]"):
        load_labeled(LabeledSource(format="hf", name="unimelb-nlp/wikiann", config="sw", split="test"))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"format": "xml", "path": "a"}, "format 'xml' is unknown"),
        ({"format": "conll"}, "needs `path`"),
        ({"format": "conll", "path": "a", "split": "test"}, "split only apply to format 'hf'"),
        ({"format": "conll", "path": "a", "tag_column": "ner"}, "must be a column index"),
        ({"format": "conll", "path": "a", "tag_column": 0}, "token column"),
        ({"format": "conllu", "path": "a", "tag_column": "ner"}, "tag_column 'ner' is unknown"),
        ({"format": "hf"}, "exactly one of `path`"),
        ({"format": "hf", "name": "x", "path": "y"}, "exactly one of `path`"),
        ({"format": "hf", "path": "y", "config": "sw"}, "not to a saved folder"),
    ],
)
def test_labeled_source_validation(fields, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        LabeledSource(**fields)


# ------------------------------------------------------------------------------------ label sets


def sentences(*tag_lists: list[str], origin: str = "mem") -> list[TaggedSentence]:
    return [
        TaggedSentence([f"w{i}" for i in range(len(tags))], tags, origin=origin, index=n)
        for n, tags in enumerate(tag_lists)
    ]


def test_label_set_from_training_data_is_deterministic_and_complete():
    labels = LabelSet.from_sentences(sentences(["I-PER", "B-LOC", "O"], ["B-MISC", "B-PER"]))
    assert labels.labels == ("O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-PER", "I-PER")
    assert labels.scheme == "iob2"
    assert labels.label2id["B-MISC"] == 3 and labels.id2label[6] == "I-PER"
    assert LabelSet.from_tags(["B-PER", "O", "I-LOC"]) == LabelSet.from_tags(["I-LOC", "B-PER"])


def test_plain_tag_sets_and_explicit_order():
    upos = LabelSet.from_tags(["VERB", "NOUN", "PUNCT", "NOUN"])
    assert upos.labels == ("NOUN", "PUNCT", "VERB") and upos.scheme == "plain"
    explicit = LabelSet(tuple(WIKIANN_NAMES))
    assert explicit.labels == tuple(WIKIANN_NAMES) and explicit.label2id["B-LOC"] == 5
    assert detect_scheme(["O", "B-PER", "I-PER"]) == "iob2"
    assert detect_scheme(["NOUN", "O"]) == "plain"


@pytest.mark.parametrize(
    ("labels", "message"),
    [((), "at least one label"), (("O", "O"), "more than once"), (("O", "S-PER", "E-PER"), "IOBES/BILOU")],
)
def test_label_set_rejects_bad_labels(labels, message):
    with pytest.raises(DataError, match=re.escape(message)):
        LabelSet(labels)


def test_strict_iob2_reports_an_orphan_inside_tag_with_its_line(tmp_path):
    path = write(tmp_path, "iob1.conll", "Maria B-PER\nworks O\n\nin O\nNew I-LOC\nYork I-LOC\n")
    corpus = read_conll(path)
    with pytest.raises(DataError, match=re.escape(f"{path}:5: 'I-LOC' follows 'O'; strict IOB2 requires")):
        check_iob2(corpus)
    with pytest.raises(DataError, match=re.escape("'I-PER' follows 'B-LOC'")):
        check_iob2(sentences(["B-LOC", "I-PER"]))
    with pytest.raises(DataError, match=re.escape("'I-PER' starts the sentence")):
        check_iob2(sentences(["I-PER"]))
    check_iob2(sentences(["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]))  # well-formed: no error


def test_evaluation_labels_missing_from_training_are_all_reported(tmp_path):
    train = LabelSet.from_sentences(sentences(["B-PER", "I-PER", "O"]))
    path = write(tmp_path, "test.conll", "Umoja B-ORG\nwa I-ORG\n\nNairobi B-LOC\nMaria B-PER\n")
    with pytest.raises(DataError) as caught:
        check_known_tags(read_conll(path), train, against="the training label set")
    message = str(caught.value)
    assert "3 tag(s) not in the training label set ['O', 'B-PER', 'I-PER']" in message
    assert f"'B-LOC' x1 (first at {path}:4)" in message
    assert f"'B-ORG' x1 (first at {path}:1)" in message and f"'I-ORG' x1 (first at {path}:2)" in message
    assert "not mapped to O" in message


# -------------------------------------------------------------------------------------- alignment


def test_first_sub_token_carries_the_label_and_the_rest_get_ignore_index(tiny_tokenizer):
    words = ["Maria", "Schmidt", "works", "in", "Geneva"]
    tags = ["B-PER", "I-PER", "O", "O", "B-LOC"]
    labels = LabelSet.from_tags(tags)
    row = encode_tagged([TaggedSentence(words, tags)], tiny_tokenizer, labels, max_length=64)[0]

    pieces = tiny_tokenizer.convert_ids_to_tokens(row["input_ids"])
    assert pieces[0] == tiny_tokenizer.cls_token and pieces[-1] == tiny_tokenizer.sep_token
    assert sum(1 for word in words if len(tiny_tokenizer.tokenize(word)) > 1) >= 3  # the test means something
    # XLM-R's SentencePiece starts every word with the "▁" piece marker: exactly those positions
    # are labeled, with the word's label id; everything else (other pieces, <s>, </s>) is -100.
    starts = [p for p, piece in enumerate(pieces) if piece.startswith("▁")]
    assert [p for p, label in enumerate(row["labels"]) if label != IGNORE_INDEX] == starts
    assert [row["labels"][p] for p in starts] == [labels.label2id[tag] for tag in tags]
    expected_word_ids = [-1 if w is None else w for w in tiny_tokenizer(words, is_split_into_words=True).word_ids()]
    assert row["word_ids"] == expected_word_ids
    assert row["attention_mask"] == [1] * len(row["input_ids"])
    assert (row["sentence_index"], row["n_words"]) == (0, 5)


def test_long_sentences_are_split_into_windows_and_every_word_is_scored(tiny_tokenizer):
    words = "John Smith visited Nairobi and Lagos with the World Health Organization".split()
    tags = ["B-PER", "I-PER", "O", "B-LOC", "O", "B-LOC", "O", "O", "B-ORG", "I-ORG", "I-ORG"]
    batch = [TaggedSentence(words, tags, index=0), TaggedSentence(["Habari"], ["O"], index=1)]
    labels = LabelSet.from_tags(tags)
    encoded = encode_tagged(batch, tiny_tokenizer, labels, max_length=12)

    assert set(encoded.column_names) == {*MODEL_COLUMNS, *ALIGNMENT_COLUMNS}
    assert all(len(ids) <= 12 for ids in encoded["input_ids"])
    first_rows = [row for row in encoded if row["sentence_index"] == 0]
    assert len(first_rows) > 2
    labeled = [w for row in first_rows for w, label in zip(row["word_ids"], row["labels"]) if label != IGNORE_INDEX]
    assert labeled == list(range(len(words)))  # each word labeled exactly once, in order
    gold_ids = [[max(label, 0) for label in row] for row in encoded["labels"]]
    assert predictions_to_tags(encoded, gold_ids, labels) == [tags, ["O"]]


def test_a_word_longer_than_a_window_keeps_its_first_sub_token(tiny_tokenizer):
    words = ["Xylophonequartzwaltzbywordmonkeys", "Nairobi"]
    tags = ["B-ORG", "B-LOC"]
    labels = LabelSet.from_tags(tags)
    encoded = encode_tagged([TaggedSentence(words, tags)], tiny_tokenizer, labels, max_length=6)
    assert [len(ids) for ids in encoded["input_ids"]][0] == 6
    predicted = predictions_to_tags(encoded, [[max(x, 0) for x in row] for row in encoded["labels"]], labels)
    assert predicted == [tags]


def test_words_without_sub_tokens_still_get_a_position(tiny_tokenizer):
    words = ["", "Maria", "\u200b"]
    tags = ["O", "B-PER", "O"]
    labels = LabelSet.from_tags(tags)
    row = encode_tagged([TaggedSentence(words, tags)], tiny_tokenizer, labels)[0]
    labeled = [w for w, label in zip(row["word_ids"], row["labels"]) if label != IGNORE_INDEX]
    assert labeled == [0, 1, 2]


def test_encoding_refuses_unknown_tags_and_slow_tokenizers(tiny_tokenizer):
    labels = LabelSet(("O", "B-PER", "I-PER"))
    with pytest.raises(DataError, match=re.escape("'B-LOC' x1 (first at mem, row 0, word 1 (0-based))")):
        encode_tagged(sentences(["O", "B-LOC"]), tiny_tokenizer, labels)

    class SlowTokenizer:
        is_fast = False

    with pytest.raises(ConfigError, match="not a fast tokenizer"):
        encode_tagged(sentences(["O"]), SlowTokenizer(), labels)
    with pytest.raises(ConfigError, match="max_length=2 leaves no room"):
        encode_tagged(sentences(["O"]), tiny_tokenizer, labels, max_length=2)


def test_predictions_map_back_to_words_from_padded_logits_and_tensors(tiny_tokenizer):
    corpus = TaggedCorpus(
        [TaggedSentence(["Maria", "Schmidt", "works"], ["B-PER", "I-PER", "O"], index=0),
         TaggedSentence(["Geneva"], ["B-LOC"], index=1)],
        source="mem",
    )  # fmt: skip
    labels = LabelSet(tuple(WIKIANN_NAMES))
    encoded = encode_tagged(corpus, tiny_tokenizer, labels)
    width = max(len(ids) for ids in encoded["input_ids"]) + 3
    # What Trainer.predict hands back: right-padded with -100, a model that says I-LOC except
    # on the first sub-token of each word, where it says B-PER.
    ids = np.full((len(encoded), width), IGNORE_INDEX)
    for r, row in enumerate(encoded):
        ids[r, : len(row["input_ids"])] = labels.label2id["I-LOC"]
        for p, label in enumerate(row["labels"]):
            if label != IGNORE_INDEX:
                ids[r, p] = labels.label2id["B-PER"]
    expected = [["B-PER"] * 3, ["B-PER"]]
    assert predictions_to_tags(encoded, ids, labels) == expected
    logits = np.eye(len(labels))[np.where(ids < 0, 0, ids)]  # one-hot "logits", shape (rows, width, labels)
    assert predictions_to_tags(encoded, logits, labels) == expected
    assert predictions_to_tags(encoded, torch.from_numpy(logits), labels) == expected

    with pytest.raises(ValueError, match="1 prediction rows for 2 encoded rows"):
        predictions_to_tags(encoded, ids[:1], labels)
    with pytest.raises(ValueError, match="predicted id -100 is not a label id"):
        predictions_to_tags(encoded, np.full_like(ids, IGNORE_INDEX), labels)
