"""Generation scores match values worked out by hand, in English and in Japanese."""

from __future__ import annotations

import pytest

from tunesmith.evaluate.generation import (
    exact_match,
    generation_metrics,
    lcs_length,
    normalize_answer,
    rouge_l,
    token_f1,
    words,
)


def test_words_lowercases_and_splits_cjk_into_characters() -> None:
    assert words("Hello, World! café_2") == ["hello", "world", "café_2"]
    assert words("東京はカタカナ") == ["東", "京", "は", "カ", "タ", "カ", "ナ"]
    assert words("한국 OK") == ["한", "국", "ok"]
    assert words("GPT東京") == ["gpt", "東", "京"]


def test_normalize_answer_drops_case_punctuation_articles_and_extra_space() -> None:
    assert normalize_answer("  The Cat,  sat on a mat! ") == "cat sat on mat"
    assert normalize_answer("「東京」です。") == "東京です"
    assert normalize_answer("Theory and another") == "theory and another"  # whole words only


def test_lcs_length_is_symmetric_and_handles_empty() -> None:
    first, second = list("ABCBDAB"), list("BDCABA")
    assert lcs_length(first, second) == 4  # e.g. BCBA
    assert lcs_length(second, first) == 4
    assert lcs_length([], second) == 0


def test_lcs_length_on_long_answers() -> None:
    first = ["w"] * 300
    second = ["w", "x"] * 200  # 200 w's in order, interleaved with x's
    assert lcs_length(first, second) == 200


def test_rouge_l_one_substituted_word() -> None:
    # LCS "the cat on the mat" = 5 of 6 words on both sides: P = R = F = 5/6.
    assert rouge_l("the cat sat on the mat", "the cat lay on the mat") == pytest.approx(5 / 6)


def test_rouge_l_different_lengths_and_order() -> None:
    # [a, b, c, d] vs [b, d, e]: LCS [b, d] = 2; P = 2/4, R = 2/3, F = 2PR / (P + R) = 4/7.
    assert rouge_l("A b, c d.", "b d e") == pytest.approx(4 / 7)
    # Reversed order keeps one word in sequence: LCS 1 of 3 on both sides.
    assert rouge_l("one two three", "three two one") == pytest.approx(1 / 3)
    assert rouge_l("Same words.", "same WORDS") == 1.0


def test_rouge_l_scores_japanese_by_character() -> None:
    # 東京は日本の首都です (10 chars) vs 東京は日本の首都だ (9): LCS 東京は日本の首都 = 8;
    # P = 8/10, R = 8/9, F = 2 * 8 / (10 + 9) = 16/19.
    assert rouge_l("東京は日本の首都です", "東京は日本の首都だ") == pytest.approx(16 / 19)
    # [東, 京, で, す] vs [京, 都, で, す]: LCS 京です = 3 of 4 on both sides. As whole words
    # these sentences would share nothing and score 0.
    assert rouge_l("東京です", "京都です") == pytest.approx(3 / 4)


def test_empty_answers() -> None:
    assert rouge_l("", "") == 1.0
    assert rouge_l("", "the answer") == 0.0
    assert rouge_l("an answer", "...") == 0.0  # punctuation only: no words
    assert token_f1("", "") == 1.0
    assert token_f1("The.", "a") == 1.0  # both only an article: empty after normalising
    assert token_f1("", "answer") == 0.0
    assert token_f1("answer", "") == 0.0
    assert exact_match("", "") == 1.0


def test_exact_match_after_normalising() -> None:
    assert exact_match("The Eiffel Tower!", "eiffel   tower") == 1.0
    assert exact_match("Paris, France", "Paris") == 0.0
    assert exact_match("東京。", "東京") == 1.0


def test_token_f1_partial_overlap() -> None:
    # normalised: [cat, sat] vs [cat, sat, down]: overlap 2, P = 1, R = 2/3, F = 0.8.
    assert token_f1("The cat sat", "a cat sat down") == pytest.approx(0.8)
    # bag of words counts repeats at most as often as the reference has them:
    # [red, red, red] vs [red, blue]: overlap 1, P = 1/3, R = 1/2, F = 0.4.
    assert token_f1("red red red", "red blue") == pytest.approx(0.4)
    assert token_f1("yes", "no") == 0.0
    # word order does not matter to F1, unlike ROUGE-L
    assert token_f1("one two three", "three two one") == 1.0


def test_generation_metrics_are_means_over_pairs() -> None:
    predictions = ["the cat sat on the mat", "Paris", "red red red"]
    references = ["the cat lay on the mat", "paris.", "red blue"]
    scores = generation_metrics(predictions, references)
    assert set(scores) == {"rouge_l", "exact_match", "token_f1"}
    # rouge_l: 5/6, 1, and [red x3] vs [red, blue] LCS 1 -> P 1/3, R 1/2, F 0.4
    assert scores["rouge_l"] == pytest.approx((5 / 6 + 1 + 0.4) / 3)
    assert scores["exact_match"] == pytest.approx(1 / 3)
    # token_f1: [cat, sat, on, mat] vs [cat, lay, on, mat] = 3/4, then 1, then 0.4
    assert scores["token_f1"] == pytest.approx((0.75 + 1 + 0.4) / 3)


def test_generation_metrics_empty_and_mismatched() -> None:
    assert generation_metrics([], []) == {}
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        generation_metrics(["a", "b"], ["a"])
