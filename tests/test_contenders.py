"""Fine-tune or RAG: documents and chunking, the hybrid ranking and its stored index, prompt
assembly within the budget, the paired bootstrap and verdict, and the contenders of a
causal-lm run end to end (train, report, `eval --compare`) on a tiny Llama."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ANSWERS, FILLER, TOPICS
from tunesmith.cli import main
from tunesmith.data.documents import (
    Document,
    Passage,
    chunk_documents,
    read_documents,
    word_count,
)
from tunesmith.errors import UserError
from tunesmith.evaluate.contenders import (
    fit_passages,
    paired_bootstrap,
    rag_question,
    verdict,
)
from tunesmith.evaluate.retrieval import Retriever, fuse, open_retriever, recall_at_k
from tunesmith.recipe import RetrievalConfig, load_recipe
from tunesmith.run import train

# --- documents and chunking ------------------------------------------------------------


def test_chunks_overlap_and_cover_the_whole_document() -> None:
    text = " ".join(f"w{i}" for i in range(25))
    passages = chunk_documents([Document("a.txt", text)], size=10, overlap=3)
    assert [p.text.split()[0] for p in passages] == ["w0", "w7", "w14", "w21"]
    assert passages[0].text.split()[-3:] == passages[1].text.split()[:3]  # the overlap
    assert passages[-1].text.split()[-1] == "w24"  # nothing lost at the end
    assert all(word_count(p.text) <= 10 for p in passages)
    assert [p.id for p in passages] == [0, 1, 2, 3] and {p.source for p in passages} == {"a.txt"}


def test_passages_keep_paragraphs_and_sentences_whole() -> None:
    text = (
        "Fences up to 1.1 m need no permit.\n\n"
        "Permits take weeks. Fees vary a lot. Ask the building committee first today.\n\n"
        "Call us."
    )
    passages = chunk_documents([Document("rules.md", text)], size=12, overlap=5)
    # the second paragraph is too long for one passage: it is cut between its sentences,
    # whole sentences fill each passage, and each passage after the first starts with the
    # sentence before it (3 or 4 words: within the overlap)
    assert [p.text for p in passages] == [
        "Fences up to 1.1 m need no permit.\n\nPermits take weeks.",
        "Permits take weeks. Fees vary a lot.",
        "Fees vary a lot. Ask the building committee first today.\n\nCall us.",
    ]
    assert all(word_count(p.text) <= 12 for p in passages)


def test_a_cjk_character_counts_as_a_word_when_chunking() -> None:
    passages = chunk_documents([Document("ja.txt", "東京は日本の首都です")], size=4, overlap=1)
    assert passages[0].text == "東京は日" and passages[1].text.startswith("日本")
    with pytest.raises(ValueError, match="overlap"):
        chunk_documents([Document("a", "x y")], size=4, overlap=4)


def _write_pdf(path: Path, text: str) -> None:
    """A one-page PDF with `text` in Helvetica (pypdf rebuilds the cross-reference table)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    body, offsets = b"%PDF-1.4\n", []
    for number, content in enumerate(objects, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj\n" % number + content + b"\nendobj\n"
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    body += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    body += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    path.write_bytes(body)


def test_every_document_format_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("plain text document", encoding="utf-8")
    (folder / "sub" / "b.md").write_text("# Title\n\nmarkdown body", encoding="utf-8")
    (folder / "c.html").write_text(
        "<html><script>skip()</script><p>html body</p></html>", encoding="utf-8"
    )
    (folder / "d.jsonl").write_text(
        json.dumps({"id": "faq-1", "text": "first record"})
        + "\n"
        + json.dumps({"content": "second record"})
        + "\n",
        encoding="utf-8",
    )
    _write_pdf(folder / "e.pdf", "pdf body text")
    (folder / ".hidden.txt").write_text("never read", encoding="utf-8")
    (folder / "image.png").write_bytes(b"\x89PNG")
    documents = {d.source: d.text for d in read_documents(folder)}
    assert documents == {
        "a.txt": "plain text document",
        "c.html": "html body",
        "faq-1": "first record",
        "d.jsonl#2": "second record",
        "e.pdf": "pdf body text",
        "sub/b.md": "# Title\n\nmarkdown body",
    }


def test_bad_documents_are_named_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        read_documents(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no documents"):
        read_documents(tmp_path / "empty")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"title": "no text"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.jsonl line 2 has no text field"):
        read_documents(bad)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        read_documents(latin)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 not really")
    with pytest.raises(UserError, match="not a readable PDF"):
        read_documents(broken)


# --- ranking and the stored index --------------------------------------------------------

PASSAGES = [
    Passage(0, "permits.md", "A building permit is required before you extend a house."),
    Passage(1, "tax.md", "The ROT deduction lowers the tax on renovation labour costs."),
    Passage(2, "garden.md", "Hedges along the street must be trimmed every summer."),
    Passage(3, "heating.md", "A heat pump needs a notification to the municipality."),
]


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    fused = fuse([[(1, 9.0), (2, 5.0), (3, 1.0)], [(2, 0.9), (3, 0.8), (1, 0.1)]])
    assert [item for item, _ in fused] == [2, 1, 3]  # 2nd+1st beats 1st+3rd


@pytest.mark.parametrize("ranking", ["bm25", "dense", "hybrid"])
def test_each_ranking_finds_the_answering_passage(ranking: str) -> None:
    retriever = Retriever.build(PASSAGES, RetrievalConfig(ranking=ranking))
    hits = retriever.search(["Do I need a building permit to extend my house?"], k=2)
    assert hits[0][0].passage.source == "permits.md"
    assert len(hits[0]) == (1 if ranking == "bm25" else 2)  # BM25: only passages sharing a word


def test_dense_ranking_finds_a_paraphrase_that_shares_no_word() -> None:
    question = "Which rule covers shrubs next to the road?"
    bm25 = Retriever.build(PASSAGES, RetrievalConfig(ranking="bm25")).search([question], 1)
    dense = Retriever.build(PASSAGES, RetrievalConfig(ranking="dense")).search([question], 1)
    assert bm25 == [[]]  # no word in common
    assert dense[0][0].passage.source == "garden.md"


def test_the_index_is_stored_and_reused_until_its_passages_change(tmp_path: Path) -> None:
    config = RetrievalConfig()
    first = open_retriever(tmp_path / "index", PASSAGES, config)
    assert not first.reused and (tmp_path / "index" / "dense.faiss").is_file()
    again = open_retriever(tmp_path / "index", PASSAGES, config)
    assert again.reused
    question = ["heat pump notification"]
    assert again.search(question, 2) == first.search(question, 2)
    changed = [*PASSAGES[:3], Passage(3, "heating.md", "Boilers are serviced yearly.")]
    assert not open_retriever(tmp_path / "index", changed, config).reused
    assert not open_retriever(tmp_path / "index", PASSAGES, RetrievalConfig(ranking="bm25")).reused


def test_recall_counts_questions_whose_document_was_retrieved() -> None:
    retriever = Retriever.build(PASSAGES, RetrievalConfig(ranking="bm25"))
    hits = retriever.search(["building permit", "hedges street", "heat pump"], 1)
    assert recall_at_k(hits, ["permits", "garden.md", "tax"]) == pytest.approx(2 / 3)
    assert recall_at_k(hits, [None, None, None]) is None


# --- prompt assembly and the verdict -----------------------------------------------------


def test_passages_are_cut_to_the_budget_and_the_question_is_kept() -> None:
    question = "what is the deadline"
    passages = ["alpha " * 30, "beta " * 30, "gamma " * 30]

    def tokens(texts: list[str]) -> int:
        return len(rag_question(question, texts).split())

    budget = tokens([passages[0]]) + 20
    kept = fit_passages(passages, tokens, budget)
    assert kept[0] == passages[0] and kept[1].startswith("beta") and kept[1].endswith("...")
    assert len(kept) == 2 and tokens(kept) <= budget
    assert fit_passages(passages, tokens, tokens([]) + 2) == []  # too little room: none
    assert rag_question(question, kept).endswith(f"Question: {question}")


def test_the_bootstrap_separates_a_real_gap_from_noise() -> None:
    rng = random.Random(0)
    noise = [rng.random() for _ in range(60)]
    shuffled = rng.sample(noise, len(noise))  # the same mean, unrelated prompt by prompt
    same = paired_bootstrap(noise, shuffled)
    assert same.within_noise and same.mean == pytest.approx(0, abs=1e-12)
    better = paired_bootstrap([x + 0.2 for x in noise], noise)
    assert not better.within_noise and better.low > 0.1


def test_the_verdict_names_the_winner_or_the_cheapest_option_within_noise() -> None:
    rng = random.Random(1)
    base = [rng.random() * 0.3 for _ in range(50)]
    clear = verdict({"base": base, "rag": [x + 0.3 for x in base], "fine-tuned": base})
    assert clear["best"] == "rag" and clear["cheapest_within_noise"] == "rag"
    assert clear["sentence"].startswith("Retrieval without fine-tuning wins")
    close = verdict({"rag": base, "fine-tuned": [x + 0.01 for x in rng.sample(base, len(base))]})
    assert close["best"] == "fine-tuned" and close["cheapest_within_noise"] == "rag"
    assert "within noise" in close["sentence"] and "choose RAG" in close["sentence"]
    # the best is also the cheapest, but not clearly better: said so, not called a win
    near = verdict({"rag": [x + 0.01 for x in rng.sample(base, len(base))], "fine-tuned": base})
    assert near["best"] == "rag" and near["cheapest_within_noise"] == "rag"
    assert "wins" not in near["sentence"] and "within noise" in near["sentence"]
    assert "the fine-tuned model (" in near["sentence"]


# --- end to end on a tiny Llama ------------------------------------------------------------


def _qa_with_documents(tmp_path: Path) -> tuple[Path, Path]:
    """Questions about a topic, whose answer is stated in that topic's document."""
    rng = random.Random(0)
    rows = []
    for topic, words in TOPICS.items():
        for _ in range(16):
            question = " ".join(rng.sample(words, 2) + rng.sample(FILLER, 2))
            rows.append({"prompt": question, "response": ANSWERS[topic], "doc": topic})
    rng.shuffle(rows)
    data = tmp_path / "qa.jsonl"
    pd.DataFrame(rows).to_json(data, orient="records", lines=True)
    docs = tmp_path / "docs"
    docs.mkdir()
    for topic, words in TOPICS.items():
        (docs / f"{topic}.md").write_text(
            f"{' '.join(words)}: {ANSWERS[topic]}.\n", encoding="utf-8"
        )
    return data, docs


@pytest.fixture
def rag_recipe(tiny_llm_recipe: dict, tmp_path: Path) -> dict:
    data, docs = _qa_with_documents(tmp_path)
    tiny_llm_recipe["data"] = {"train": str(data), "documents": str(docs), "source_column": "doc"}
    tiny_llm_recipe["compare"] = ["base", "few-shot", "rag", "fine-tuned", "fine-tuned+rag"]
    tiny_llm_recipe["retrieval"] = {"ranking": "bm25", "top_k": 2, "shots": 2}
    tiny_llm_recipe["train"]["epochs"] = 2
    return tiny_llm_recipe


def test_a_run_scores_every_contender_with_its_cost_and_a_verdict(rag_recipe: dict) -> None:
    metrics = train(load_recipe(rag_recipe))
    contenders = metrics["contenders"]
    assert list(contenders) == ["base", "few-shot", "rag", "fine-tuned", "fine-tuned+rag"]
    for scores in contenders.values():
        assert 0 <= scores["rouge_l"] <= 1 and scores["generated"] == 6
        assert scores["prompt_tokens"] > 0 and scores["seconds_per_answer"] > 0
    # the retrieved passages and the few-shot pairs lengthen the prompt
    assert contenders["rag"]["prompt_tokens"] > contenders["base"]["prompt_tokens"]
    assert contenders["few-shot"]["prompt_tokens"] > contenders["base"]["prompt_tokens"]
    retrieval = metrics["retrieval"]
    assert retrieval["documents"] == 3 and retrieval["passages"] == 3
    assert retrieval["recall_at_k"] == 1.0  # each question names its topic's words
    assert metrics["verdict"]["best"] in contenders and metrics["verdict"]["sentence"]

    run = Path(rag_recipe["output_dir"])
    rows = [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    assert {"base", "few_shot", "rag", "fine_tuned", "fine_tuned_rag"} <= set(rows[0])
    assert rows[0]["passages"][0]["source"].endswith(".md") and len(rows[0]["shots"]) == 2
    assert set(rows[0]["scores"]) == set(contenders)
    assert (run / "retrieval" / "documents" / "manifest.json").is_file()
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "Fine-tune or RAG?" in html and metrics["verdict"]["sentence"][:40] in html


def compare(run: Path, names: str, *extra: str) -> dict:
    """`tunesmith eval RUN --compare NAMES --json`, parsed."""
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["eval", str(run), "--compare", names, "--json", *extra]) == 0
    text = printed.getvalue()
    return json.loads(text[text.index("{") :])


def test_eval_compare_reuses_the_runs_index(rag_recipe: dict, capsys) -> None:
    rag_recipe["compare"] = ["base", "rag"]
    train(load_recipe(rag_recipe))
    run = Path(rag_recipe["output_dir"])
    manifest = (run / "retrieval" / "documents" / "manifest.json").read_text()
    capsys.readouterr()
    assert main(["eval", str(run), "--compare", "base,rag,fine-tuned+rag", "--json"]) == 0
    printed = capsys.readouterr().out
    result = json.loads(printed[printed.index("{") :])
    assert list(result["contenders"]) == ["base", "rag", "fine-tuned", "fine-tuned+rag"]
    assert result["retrieval"]["reused"] is True
    assert (run / "retrieval" / "documents" / "manifest.json").read_text() == manifest
    assert main(["eval", str(run), "--compare", "rag,shots"]) == 2
    assert "shots" in capsys.readouterr().err

    answers = run.parent / "answers.jsonl"
    assert main(["predict", str(run), "football goal", "--rag", "--output", str(answers)]) == 0
    (row,) = [json.loads(line) for line in answers.read_text().splitlines()]
    assert row["prompt"] == "football goal" and isinstance(row["response"], str)
    assert row["passages"][0]["source"] == "sports.md"  # the question's topic
    assert (run / "retrieval" / "documents" / "manifest.json").read_text() == manifest
    # another file of questions, which need not name their documents
    other = run.parent / "other.jsonl"
    other.write_text(json.dumps({"prompt": "pizza cake", "response": "bake it"}) + "\n")
    scored = compare(run, "base,rag", "--data", str(other))
    assert scored["examples"] == 1 and "recall_at_k" not in scored["retrieval"]
    plain = run.parent / "plain.jsonl"
    assert main(["predict", str(run), "football goal", "--no-rag", "--output", str(plain)]) == 0
    assert "passages" not in json.loads(plain.read_text())


def test_domain_adaptation_is_compared_with_rag_over_its_own_documents(
    tiny_llm_recipe: dict, tmp_path: Path
) -> None:
    """format text + data.questions: continued pre-training, RAG over the training
    documents, and both, answer the same questions."""
    data, _ = _qa_with_documents(tmp_path)
    corpus = tmp_path / "corpus"
    for topic, words in TOPICS.items():
        (corpus / topic).mkdir(parents=True)
        for i in range(4):
            (corpus / topic / f"{i}.txt").write_text(
                f"{' '.join(words)} {FILLER[i]}: {ANSWERS[topic]}.", encoding="utf-8"
            )
    tiny_llm_recipe["data"] = {
        "train": str(corpus),
        "format": "text",
        "questions": str(data),
        "source_column": "doc",
    }
    tiny_llm_recipe["retrieval"] = {"ranking": "bm25", "top_k": 2}
    tiny_llm_recipe["compare"] = ["base", "few-shot", "rag", "fine-tuned", "fine-tuned+rag"]
    metrics = train(load_recipe(tiny_llm_recipe))
    assert list(metrics["contenders"]) == ["base", "rag", "fine-tuned", "fine-tuned+rag"]
    assert metrics["questions"]["count"] == 6  # generation.max_examples
    retrieval = metrics["retrieval"]
    assert retrieval["source"] == "the training documents"
    assert retrieval["documents"] == metrics["splits"]["train"]  # the documents trained on
    assert retrieval["recall_at_k"] == 1.0  # "sports" names the folder sports/
    run = Path(tiny_llm_recipe["output_dir"])
    rows = [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]
    assert rows[0]["passages"] and "few_shot" not in rows[0]

    # after training: the same questions, the run's index reused
    result = compare(run, "rag,fine-tuned+rag")
    assert list(result["contenders"]) == ["rag", "fine-tuned", "fine-tuned+rag"]
    assert result["retrieval"]["reused"] and result["examples"] == 6
    assert main(["eval", str(run), "--compare", "few-shot"]) == 2  # no pairs to show


def test_questions_that_are_raw_text_are_refused_before_work(
    tiny_llm_recipe: dict, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(12):
        (corpus / f"{i}.txt").write_text("the team won the match", encoding="utf-8")
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"text": "just text"}\n', encoding="utf-8")
    tiny_llm_recipe["data"] = {"train": str(corpus), "format": "text", "questions": str(questions)}
    tiny_llm_recipe["compare"] = ["rag"]
    tiny_llm_recipe["guards"] = {"data_quality": "off"}  # twelve copies of one text
    with pytest.raises(UserError, match=r"data.questions: .* holds raw text"):
        train(load_recipe(tiny_llm_recipe))
    assert not Path(tiny_llm_recipe["output_dir"]).exists()


def test_compare_is_refused_where_the_task_has_no_contenders(tiny_recipe: dict) -> None:
    tiny_recipe["compare"] = ["rag"]
    with pytest.raises(UserError, match="compare: rag do not apply to text-classification"):
        load_recipe(tiny_recipe)


def test_long_prompts_are_generated_in_smaller_batches() -> None:
    from tunesmith.train.batching import sorted_batches

    lengths = [1000, 40, 900, 50, 1000, 60, 45]
    batches = sorted_batches(lengths, batch_size=4, max_tokens=2048)
    # longest first; a batch is padded to its first row: 2 x 1,000 fit, 3 x 900 do not
    assert batches == [[0, 4], [2, 5], [3, 6, 1]]
    assert sorted_batches(lengths, batch_size=4) == [[0, 4, 2, 5], [3, 6, 1]]
    assert sorted_batches([5000], batch_size=4, max_tokens=2048) == [[0]]  # one row at least
