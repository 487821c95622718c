"""QA data from the tiny knowledge base: questions, answers from our own RAG, the grounding filter, the files.

The model-written path runs against a real HTTP server on loopback speaking the OpenAI chat-completions
protocol: it writes questions when asked by the question writer, and answers as the served model would —
faithfully for most questions, with an invented fact for questions about 红孩儿, which the grounding check
must reject.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.knowledge_chat import KnowledgeChat
from tests.conftest import make_settings, write_kb
from training.cli import main
from training.data.generator import GeneratorError, create_generator
from training.data.grounding import GroundingChecker
from training.data.qa import (
    QaDataError,
    QaItem,
    Topic,
    build_qa,
    qa_paths,
    split_items,
    structure_questions,
)
from training.data.records import read_conversations
from training.settings import GeneratorSettings

QUESTIONS = {
    "黑熊精": ["好的，以下是问题：", "1. 黑熊精在哪里？", "2. 黑熊精在原著里偷了什么？", "3. 黑熊精在哪里？"],
    "红孩儿": ["红孩儿的父亲是谁？", "红孩儿住在哪里？"],
}


def _reply(messages: list[dict[str, str]], lie: bool) -> str:
    system, user = messages[0]["content"], messages[-1]["content"]
    if "出题人" in system:  # the question writer
        title = re.search(r"资料（(.+?)）", user).group(1)
        return "\n".join(QUESTIONS.get(title, [f"{title}是谁？"]))
    question = user.rsplit("问题 / Question:", 1)[-1]
    if "红孩儿" in question or lie:
        return "红孩儿的父亲是玉皇大帝，他住在月亮上[1]。"
    # A faithful model: the first sentence of passage [1], cited.
    passage = re.search(r"\[1\][^\n]*\n([^\n]+)", user).group(1)
    return re.split(r"(?<=。)", passage)[0].rstrip("。") + "[1]。"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fail = False  # answer 500
    lie = False  # every answer invented

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(200, "application/json", json.dumps({"data": [{"id": "fake"}]}).encode())

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if type(self).fail:
            self._send(500, "application/json", b'{"error": {"message": "model overloaded"}}')
            return
        text = _reply(payload["messages"], type(self).lie)
        chunks = [text[i : i + 5] for i in range(0, len(text), 5)]
        events = [{"choices": [{"index": 0, "delta": {"content": c}}]} for c in chunks]
        body = "".join(f"data: {json.dumps(e, ensure_ascii=False)}\n\n" for e in events) + "data: [DONE]\n\n"
        self._send(200, "text/event-stream", body.encode())


@pytest.fixture(scope="module")
def _server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server(_server: tuple[str, type[_Handler]]) -> tuple[str, type[_Handler]]:
    _server[1].fail = _server[1].lie = False
    return _server


# Building an index (jieba's dictionary) takes seconds: one knowledge base and one assistant per backend.
@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("qa")
    return write_kb(root / "kb"), root / "app-data"


@pytest.fixture(scope="module")
def extractive(kb: tuple[Path, Path]) -> KnowledgeChat:
    return KnowledgeChat(make_settings(*kb))


@pytest.fixture(scope="module")
def with_model(kb: tuple[Path, Path], _server: tuple[str, type[_Handler]]) -> KnowledgeChat:
    url = _server[0]
    return KnowledgeChat(make_settings(*kb, "llm.backend=openai", f"llm.openai.base_url={url}"))


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_structure_questions_follow_the_entry():
    topic = Topic(
        "bosses/x.md", "黑熊精", "boss", ("位置", "原著", "打法", "坐骑"), "", ("黑风大王", "Black Bear Guai"), "en"
    )
    assert structure_questions(topic) == [
        "黑熊精是谁？",
        "黑熊精在哪里？",
        "黑熊精在《西游记》原著里是怎样的？",
        "黑熊精怎么打？",
        "黑熊精的坐骑是怎样的？",
        "黑风大王是谁？",
        "Who is Black Bear Guai?",
    ]
    place = Topic("areas/y.md", "黑风山", "area", (), "", (), "")
    assert structure_questions(place) == ["黑风山是什么？"]


def test_extractive_answers_become_grounded_sft_data(extractive, tmp_path):
    out = tmp_path / "out"
    stats = build_qa(extractive, out, system="你是悟了悟了。", generator=None, val_ratio=0.2)
    paths = qa_paths(out)
    train, val = read_conversations(paths["train"]), read_conversations(paths["val"])
    assert stats.topics == 4 and stats.questions > 10 and stats.answered == stats.questions
    assert len(train) == stats.train > 0 and len(val) == stats.validation > 0
    checker = GroundingChecker(0.8, extractive.retriever.index.tokenizer.tokens)
    raw = {item["question"]: item for item in _rows(paths["raw"])}
    questions = []
    for record in train + val:
        turn = record.turns[0]
        assert turn.system == "你是悟了悟了。"
        assert turn.input.startswith("资料 / Passages:\n[1] ")  # the prompt the served model reads
        question = turn.input.rsplit("问题 / Question: ", 1)[1]
        questions.append(question)
        texts = [s["text"] for s in raw[question]["sources"]]
        assert checker.check(turn.output, texts).grounded  # only grounded answers are kept
    assert len(questions) == len(set(questions))
    assert "黑熊精在哪里？" in questions


def test_a_rerun_resumes_from_the_caches(extractive, tmp_path):
    out = tmp_path / "out"
    first = build_qa(extractive, out, system="", generator=None)
    train = qa_paths(out)["train"].read_text(encoding="utf-8")
    # An interrupted write leaves a torn last line: it is ignored, that question is asked again.
    raw = qa_paths(out)["raw"]
    lines = raw.read_text(encoding="utf-8").splitlines()
    raw.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20], encoding="utf-8")
    second = build_qa(extractive, out, system="", generator=None)
    assert second.answered == 1 and second.resumed == first.questions - 1
    assert qa_paths(out)["train"].read_text(encoding="utf-8") == train
    third = build_qa(extractive, out, system="", generator=None, fresh=True)
    assert third.answered == third.questions and third.resumed == 0


def test_without_passages_the_input_is_the_question_and_citations_go(extractive, tmp_path):
    build_qa(extractive, tmp_path, system="S", generator=None, with_passages=False, val_ratio=0)
    records = read_conversations(qa_paths(tmp_path)["train"])
    assert records and qa_paths(tmp_path)["val"].read_text(encoding="utf-8") == ""
    for record in records:
        assert "资料" not in record.turns[0].input and not re.search(r"\[\d", record.turns[0].output)


def test_model_questions_and_answers_with_the_grounding_filter(with_model, tmp_path, server):
    generator = create_generator(GeneratorSettings(base_url=server[0]))
    out = tmp_path / "out"
    stats = build_qa(with_model, out, system="SYS", generator=generator, questions_per_topic=3, val_ratio=0)
    cached = {r["topic"]: r["questions"] for r in _rows(qa_paths(out)["questions"])}
    # The preamble line is dropped, the list marks are gone, at most 3 per topic.
    assert cached["bosses/hei-xiong-jing.md"] == ["黑熊精在哪里？", "黑熊精在原著里偷了什么？", "黑熊精在哪里？"]
    raw = [QaItem.from_dict(r) for r in _rows(qa_paths(out)["raw"])]
    red_boy = [i for i in raw if "红孩儿" in i.question]
    assert red_boy and all(not i.grounded and "玉皇大帝" in i.reasons[0] for i in red_boy)
    assert stats.rejected == {"not covered": len(red_boy)}
    # The repeated question was answered once (the second time from the cache), then dropped as a duplicate.
    assert stats.resumed == 1 and stats.duplicates == 1
    kept = [r.turns[0] for r in read_conversations(qa_paths(out)["train"])]
    assert kept and not any("红孩儿" in t.input.rsplit("Question:", 1)[1] for t in kept)
    assert all(t.output.endswith("[1]。") and t.system == "SYS" for t in kept)


def test_nothing_grounded_is_an_error(with_model, tmp_path, server):
    server[1].lie = True
    generator = create_generator(GeneratorSettings(base_url=server[0]))
    with pytest.raises(QaDataError, match="min_coverage"):
        build_qa(with_model, tmp_path / "out", system="", generator=generator, max_topics=1)


def test_a_failing_question_writer_names_the_setting(extractive, tmp_path, server):
    server[1].fail = True
    generator = create_generator(GeneratorSettings(base_url=server[0]))
    with pytest.raises(GeneratorError, match=r"model overloaded.*data.generator.base_url"):
        build_qa(extractive, tmp_path, system="", generator=generator)


def test_split_is_stable_and_never_empty():
    items = [QaItem(f"问题{i}？", "t", "答[1]。", (), "x", True) for i in range(40)]
    train, val = split_items(items, 0.1)
    assert len(train) + len(val) == 40 and 0 < len(val) < 10
    assert split_items(list(reversed(items)), 0.1)[1] == list(reversed(val))  # by question, not position
    assert len(split_items(items[:2], 0.01)[1]) == 1
    assert split_items(items, 0)[1] == []


def test_cli(kb, extractive, tmp_path, capsys):
    data = tmp_path / "data"
    app_sets = [f"knowledge.paths=[{kb[0]}]", f"app.data_dir={kb[1]}", "rag.embedding.model="]
    app_sets += ["rag.reranker.model="]
    argv = ["--set", f"paths.data_dir={data}", *(a for s in app_sets for a in ("--app-set", s)), "qa"]
    assert main([*argv, "--max-topics", "2"]) == 0
    out = capsys.readouterr().out
    assert "questions come from the knowledge base's structure" in out and "topics                    2" in out
    rows = _rows(data / "qa_train.jsonl")
    assert rows and rows[0]["conversation"][0]["system"].startswith("你是“悟了悟了”")
