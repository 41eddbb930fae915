"""Tuning on the user's corpus: pairs from the documents' structure, the scorer's place in
the engine, the gate's decision (no Ray, no model)."""

from __future__ import annotations

from pipelines.tune import GateFigures, decide
from qa import extractive
from qa.training_pairs import ChunkText, chunk_pairs, derive, split
from tests.unit.test_passages import FAQ, WordEmbedder, hit

OPTIONS = ("--force, -f\n\nOverwrite the file even when it exists and is newer than the "
           "source.\n\n--quiet, -q\n\nPrint nothing but errors while the copy runs.")
WRAPPED = ("The index file ends with a\nchecksum of the corresponding packfile, and\n\n"
           "a checksum of all of the above, written when the file is closed.")


def test_a_faq_question_pairs_with_the_passage_under_it():
    pairs = list(chunk_pairs(ChunkText(source="faq.html", heading=["Configuration"], text=FAQ)))
    faq = [p for p in pairs if p.kind == "faq"]
    assert [p.question for p in faq] == ["How do I configure a different editor?"]
    assert faq[0].positive.startswith("If you haven't specified an editor")
    assert all(p.question not in p.positive for p in pairs)


def test_title_lines_of_an_option_list_pair_with_their_descriptions():
    pairs = {p.question: p for p in chunk_pairs(ChunkText(source="cp.html", text=OPTIONS))}
    assert pairs["--force, -f"].positive.startswith("Overwrite the file")
    assert pairs["--quiet, -q"].positive.startswith("Print nothing but errors")


def test_wrapped_line_fragments_and_command_lines_are_no_questions():
    assert not list(chunk_pairs(ChunkText(source="pack.html", text=WRAPPED)))
    shell = "$ git merge-index git-merge-one-file hello\n\nThe script is called with three versions."
    assert not [p for p in chunk_pairs(ChunkText(source="m.html", text=shell)) if p.kind != "heading"]


def test_a_heading_pairs_with_its_first_passage_only_where_its_section_opens():
    text = "Writing archives takes a name and a mode, and the members are added one by one."
    opening = ChunkText(source="a.html", heading=["Writing archives"], text=text)
    later = opening.model_copy(update={"first_of_section": False})
    assert [p.kind for p in chunk_pairs(opening)] == ["heading"]
    assert not list(chunk_pairs(later))


def test_negatives_are_the_neighbours_passages_that_are_not_the_positive():
    chunk = ChunkText(source="faq.html", text=FAQ)
    other = hit(2, "Set the pager with core.pager when the default pager is not wanted here.")
    pairs = derive([chunk], lambda q: [hit(1, FAQ), other])
    editor = next(p for p in pairs if p.kind == "faq")
    assert editor.negatives and all(not n.startswith("If you haven't") for n in editor.negatives)
    assert any("core.pager" in n for n in editor.negatives)
    assert not derive([chunk], lambda q: [hit(1, FAQ)][:0])  # no negatives: no pair


def test_pairs_are_split_by_document():
    chunks = [ChunkText(source=f"doc{i}.html", text=OPTIONS.replace("force", f"force{i}"))
              for i in range(40)]
    pairs = derive(chunks, lambda q: [hit(1, "An unrelated passage that answers nothing at all.")])
    train, test = split(pairs, 0, 0.3)
    assert train and test
    assert not {p.source for p in train} & {p.source for p in test}


class PreferVisual:
    """A scorer that likes whatever passage mentions VISUAL."""

    label = "answers@v1"

    def score(self, question, passages):
        return [1.0 if "VISUAL" in p else 0.0 for p in passages]


def test_a_tuned_scorer_chooses_among_the_best_openings_but_refusal_keeps_the_untuned_scale():
    question = "How do I configure a different editor?"
    untuned = extractive.best_passage(question, [hit(1, FAQ)], WordEmbedder())
    tuned = extractive.best_passage(question, [hit(1, FAQ)], WordEmbedder(), PreferVisual())
    assert "VISUAL" not in untuned.text and "VISUAL" in tuned.text
    assert tuned.score == untuned.score


def test_the_gate_publishes_only_a_scorer_that_beats_the_untuned_engine():
    def figures(key_fact):
        return GateFigures(key_fact=key_fact, answer_f1=0.5, answered=20)

    assert decide(figures(0.40), figures(0.45), 0.0) == []
    assert decide(figures(0.40), figures(0.40), 0.0)  # a tie is no gain
    assert decide(figures(0.40), figures(0.35), -0.1)  # worse is refused whatever --min-gain
    assert decide(figures(0.40), figures(0.45), 0.1)  # under --min-gain


def test_a_corpus_of_few_files_is_split_by_section():
    chunks = [ChunkText(source=f"manual{i % 3}.pdf", heading=[f"Chapter {i}"],
                        text=OPTIONS.replace("force", f"force{i}")) for i in range(30)]
    pairs = derive(chunks, lambda q: [hit(1, "An unrelated passage that answers nothing at all.")])
    train, test = split(pairs, 0, 0.3)
    assert train and test
    assert not {(p.source, p.section) for p in train} & {(p.source, p.section) for p in test}


def test_the_served_scorer_is_the_named_cross_encoder_or_none(tmp_path):
    import pytest

    from indexing.passage_scorer import load_scorer
    from llama_rag.adapters import AdapterStore, BaseModelRef, Manifest
    from llama_rag.config import load_settings
    from llama_rag.errors import InvalidInputError, NotFoundError

    settings = load_settings(None, {"adapters.dir": str(tmp_path / "adapters"),
                                    "adapters.cache_dir": str(tmp_path / "cache")})
    assert load_scorer(settings) is None  # qa.passage_scorer unset: the untuned engine
    files = tmp_path / "files"
    files.mkdir()
    (files / "adapter_config.json").write_text("{}")
    AdapterStore.of(settings.adapters).publish(files, Manifest(
        name="sections", method="lora", task="classify",
        base_model=BaseModelRef(name="m", hash="h")))
    with pytest.raises(InvalidInputError, match="not a passage scorer"):
        load_scorer(settings, "sections")
    with pytest.raises(NotFoundError, match="no adapter 'answers'"):
        load_scorer(settings, "answers")
