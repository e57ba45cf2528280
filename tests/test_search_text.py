"""Text analysis, passages and reply text: folding, synonyms, sentence windows, the byte limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.search.analyzer import Analyzer, fold, language_of
from bot.search.content import Article
from bot.search.excerpt import TEXT_LIMIT, nothing, quote, trim
from bot.search.passages import sentences, windows

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    """The project's analyzer (user dictionary, stopwords, synonyms)."""
    return Analyzer.from_config(ROOT / "config")


def test_fold_makes_full_width_half_width_and_traditional_simplified() -> None:
    assert fold("ＷｅＣｈａｔ１２３") == "wechat123"
    assert fold("微信公眾平臺的價值觀") == "微信公众平台的价值观"


@pytest.mark.parametrize(
    ("text", "language"),
    [("微信公众平台的价值观是什么", "zh"), ("what is an alliance chain", "en"),
     ("微信 is a way of life", "en"), ("微信是什么 WeChat", "zh"), ("", "zh")],
)
def test_language_of(text: str, language: str) -> None:
    assert language_of(text) == language


def test_synonyms_make_one_token_across_languages(analyzer: Analyzer) -> None:
    assert "微信" in analyzer.tokens("WeChat")
    assert analyzer.tokens("official account") == analyzer.tokens("public account")
    assert analyzer.tokens("public account") == analyzer.tokens("公众号")
    assert "公众号" in analyzer.tokens("公众号")
    assert "小程序" in analyzer.tokens("mini program")


@pytest.mark.parametrize("wording", ["公共平台", "public platform", "公众平台"])
def test_every_wording_of_a_synonym_gives_its_first_entrys_pieces(
    analyzer: Analyzer, wording: str
) -> None:
    # search mode cuts 公众平台 into 公众 平台 公众平台; 公共平台 must not leave 公共 behind
    assert analyzer.tokens(f"微信{wording}的价值观") == ["微信", "公众", "平台", "公众平台",
                                                      "价值", "价值观"]


def test_english_is_lower_cased_stemmed_and_stopwords_dropped(analyzer: Analyzer) -> None:
    assert analyzer.tokens("The Founders are Worrying") == ["founder", "worri"]


def test_traditional_and_full_width_questions_give_the_same_tokens(analyzer: Analyzer) -> None:
    assert analyzer.tokens("微信公眾平臺的價值觀") == analyzer.tokens("微信公众平台的价值观")
    assert analyzer.tokens("ａｌｌｉａｎｃｅ　ｃｈａｉｎ") == analyzer.tokens("alliance chain")


def test_user_dictionary_keeps_words_whole(tmp_path: Path) -> None:
    userdict = tmp_path / "userdict.txt"
    plain = Analyzer()
    assert "用完即走" not in plain.tokens("好的产品用完即走")
    userdict.write_text("用完即走 2000 l\n", encoding="utf-8")
    assert "用完即走" in Analyzer(userdict=userdict).tokens("好的产品用完即走")


def test_a_config_change_changes_the_fingerprint(tmp_path: Path) -> None:
    assert Analyzer().fingerprint != Analyzer(synonyms=[["猫", "cat"]]).fingerprint


def test_sentences_end_at_chinese_and_english_punctuation() -> None:
    assert sentences("你好。你是谁？我很好！") == ["你好。", "你是谁？", "我很好！"]
    assert sentences("It works. Does it? Yes! e.g.x") == ["It works.", "Does it?", "Yes!", "e.g.x"]


def test_windows_hold_one_to_three_sentences_and_overlap() -> None:
    body = "一句话在这里说完了。" * 7 + "\n短标题\n" + "第二段的一句话也很长很长。" * 4
    article = Article("a.md", "标题", body)
    found = windows(article, max_sentences=3, max_chars=360)
    assert all(1 <= len(sentences(p.text)) <= 3 for p in found)
    assert [p.pid for p in found] == [f"a.md#{n}" for n in range(len(found))]
    assert sentences(found[0].text)[-1] == sentences(found[1].text)[0]  # one sentence overlap
    assert any(p.text.startswith("短标题第二段") for p in found)  # a heading joins what follows


def test_trim_cuts_at_a_sentence_end() -> None:
    text = "第一句话。" * 200
    cut = trim(text, 100)
    assert len(cut.encode()) <= 100 and cut.endswith("。")


def test_trim_cuts_one_endless_sentence_at_a_comma_with_an_ellipsis() -> None:
    cut = trim("很长的从句，" * 300, 60)
    assert len(cut.encode()) <= 60 and cut.endswith("，…")


@pytest.mark.parametrize("language", ["zh", "en"])
def test_quote_names_the_article_and_fits_the_limit(language: str) -> None:
    text = quote("话" * 5000, "标题" * 1000, language, has_more=True)
    assert len(text.encode()) <= TEXT_LIMIT
    assert ("更多" if language == "zh" else "more") in text


def test_nothing_suggests_titles_in_the_questions_language() -> None:
    zh = nothing("明天股票会涨吗", "zh", ["甲", "乙"])
    assert "抱歉" in zh and "《甲》" in zh
    en = nothing("best pizza", "en", ["A"])
    assert "Sorry" in en and "- A" in en
