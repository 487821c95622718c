"""QA instruction data: questions per knowledge entry, answered by our own RAG pipeline, kept only when grounded.

    topics (knowledge entries) -> questions (a generator model, or the entry's structure)
    -> KnowledgeChat.ask (retrieval + the configured answerer) -> grounding check against the cited passages
    -> de-duplication -> train / validation split -> xtuner SFT JSONL with the system prompt

Every question and every answer is appended to a cache as soon as it exists (``qa_questions.jsonl``,
``qa_raw.jsonl``), so an interrupted run resumes where it stopped and a rerun only redoes the final filtering.
With ``with_passages`` the training input is exactly the prompt the served model reads (numbered passages +
question, ``llm.prompt.build_messages``) and the output the cited answer; without it, the bare question and the
answer with its citations removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm.base import ChatModel, ChatTurn
from llm.extractive import NOTHING_RELEVANT_EN, NOTHING_RELEVANT_ZH
from llm.prompt import build_messages
from modules.rag.chunker import sections
from modules.rag.text import mostly_english
from modules.rag.types import Chunk, Document, Passage
from training.data.dedup import Deduplicator, dedup_key
from training.data.generator import ask_lines
from training.data.grounding import GroundingChecker
from training.data.records import Conversation, sft_record, write_conversations

if TYPE_CHECKING:
    from app.events import Answer
    from app.knowledge_chat import KnowledgeChat

log = logging.getLogger(__name__)

QUESTION_SYSTEM = (
    "你是《黑神话：悟空》玩家社区的出题人。根据给出的资料，写出玩家可能会问、并且只用这段资料就能回答的问题。"
    "问题要具体，写出涉及的名字，不要用“他”“这个”之类的指代。每行一个问题，不要编号，不要回答。"
)
TOPIC_CHARS = 1500  # of an entry's text shown to the question writer: enough for its sections, short for a prompt
_CITATION = re.compile(r"\s*\[\d+(?:\s*[,，、]\s*\d+)*\]")

# Section heading words -> the question a player asks about that section ({t} = the entry's title).
SECTION_QUESTIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("位置", "地点", "所在", "区域", "场景"), "{t}在哪里？"),
    (("打法", "攻略", "技巧", "应对", "战斗", "机制"), "{t}怎么打？"),
    (("原著", "西游记", "典故", "出处"), "{t}在《西游记》原著里是怎样的？"),
    (("掉落", "奖励"), "{t}有什么奖励？"),
    (("获取", "获得", "解锁", "入手", "来源"), "{t}怎么获得？"),
    (("剧情", "故事", "经历"), "{t}的故事是怎样的？"),
    (("结局", "下场", "结果"), "{t}最后怎么样了？"),
    (("条件", "触发", "入口", "前往"), "{t}怎么触发？"),
    (("身份", "来历", "原型", "简介", "概述"), "{t}是什么来历？"),
)
WHO_CATEGORIES = ("boss", "bosses", "character", "characters", "npc", "enemy", "enemies", "yaoguai")


class QaDataError(RuntimeError):
    """The QA stage cannot run or produced nothing usable; the message says what to change."""


@dataclass(frozen=True)
class Topic:
    """A knowledge entry to ask about."""

    doc_id: str
    title: str
    category: str
    headings: tuple[str, ...]
    text: str
    aliases: tuple[str, ...] = ()
    summary_en: str = ""

    @classmethod
    def from_document(cls, doc: Document) -> Topic:
        secs = sections(doc.body)
        text = "\n".join(f"{s.heading}：{''.join(s.sentences)}" if s.heading else "".join(s.sentences) for s in secs)
        return cls(
            doc.doc_id,
            doc.title,
            doc.category,
            tuple(s.heading for s in secs if s.heading),
            text,
            doc.aliases,
            doc.summary_en,
        )


@dataclass(frozen=True)
class QaSource:
    """A passage an answer was written from; ``index`` is its citation number."""

    index: int
    title: str
    section: str
    text: str
    source: str


@dataclass(frozen=True)
class QaItem:
    """One question with the pipeline's answer and the grounding verdict."""

    question: str
    topic: str
    answer: str
    sources: tuple[QaSource, ...]
    backend: str
    grounded: bool
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QaItem:
        """The item from a cache row (parsed JSON, so its values are untyped)."""
        sources = tuple(QaSource(**s) for s in data["sources"])
        return cls(
            str(data["question"]),
            str(data["topic"]),
            str(data["answer"]),
            sources,
            str(data["backend"]),
            bool(data["grounded"]),
            tuple(data.get("reasons", ())),
        )


@dataclass
class QaStats:
    """What the QA stage asked, kept and wrote."""

    topics: int = 0
    questions: int = 0
    answered: int = 0  # asked in this run
    resumed: int = 0  # answers taken from the cache of an earlier run
    grounded: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reason kind -> count
    duplicates: int = 0
    train: int = 0
    validation: int = 0

    def table(self) -> str:
        """The report as aligned lines for the terminal."""
        rows = [
            ("topics", self.topics),
            ("questions", self.questions),
            ("answered now", self.answered),
            ("from cache", self.resumed),
            ("grounded", self.grounded),
            *((f"rejected: {kind}", n) for kind, n in sorted(self.rejected.items())),
            ("duplicates", self.duplicates),
            ("train", self.train),
            ("validation", self.validation),
        ]
        return "\n".join(f"{name:<26}{value}" for name, value in rows)


# -- questions ---------------------------------------------------------------------------------------


def structure_questions(topic: Topic) -> list[str]:
    """Questions read off an entry's structure: what it is, then one per known kind of section."""
    title = topic.title
    who = topic.category.lower() in WHO_CATEGORIES
    out = [f"{title}是谁？" if who else f"{title}是什么？"]
    for heading in topic.headings:
        for words, template in SECTION_QUESTIONS:
            if any(w in heading for w in words):
                out.append(template.format(t=title))
                break
        else:
            out.append(f"{title}的{heading}是怎样的？")
    chinese_aliases = [a for a in topic.aliases if not mostly_english(a)]
    if chinese_aliases:
        out.append(f"{chinese_aliases[0]}是谁？" if who else f"{chinese_aliases[0]}是什么？")
    english = [a for a in topic.aliases if mostly_english(a)]
    if topic.summary_en and english:
        out.append(f"Who is {english[0]}?" if who else f"What is {english[0]}?")
    return list(dict.fromkeys(out))


def model_questions(model: ChatModel, topic: Topic, count: int, temperature: float) -> list[str]:
    """Up to ``count`` questions about the entry, written by the generator model."""
    messages = [
        ChatTurn("system", QUESTION_SYSTEM),
        ChatTurn("user", f"资料（{topic.title}）：\n{topic.text[:TOPIC_CHARS]}\n\n请写出 {count} 个问题。"),
    ]
    lines = ask_lines(model, messages, temperature)
    # A line without a question mark is usually a preamble ("好的，以下是问题：") or an answer.
    return [q for q in lines if q[-1] in "？?" and 4 <= len(q) <= 120][:count]


QuestionWriter = Callable[[Topic], list[str]]


def question_writer(model: ChatModel | None, count: int, temperature: float) -> QuestionWriter:
    """Questions from the generator model when there is one, else from the entry's structure."""
    if model is None:
        return structure_questions
    return lambda topic: model_questions(model, topic, count, temperature)


# -- the caches ---------------------------------------------------------------------------------------


def _read_cache(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a cache file; a torn last line (an interrupted write) is ignored."""
    if not path.is_file():
        return []
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s:%d: unreadable cache line ignored (an interrupted write?)", path, n)
    return rows


def _append(path: Path, row: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")


def topic_questions(topics: Sequence[Topic], write: QuestionWriter, cache: Path) -> dict[str, list[str]]:
    """Questions per topic id, read from the cache or written (and cached) now."""
    done = {str(r["topic"]): [str(q) for q in r["questions"]] for r in _read_cache(cache)}
    out = {}
    for topic in topics:
        if topic.doc_id not in done:
            done[topic.doc_id] = write(topic)
            _append(cache, {"topic": topic.doc_id, "questions": done[topic.doc_id]})
        out[topic.doc_id] = done[topic.doc_id]
    return out


# -- answers ------------------------------------------------------------------------------------------


def judge(answer: Answer, topic: str, checker: GroundingChecker) -> QaItem:
    """The pipeline's answer as a QaItem with its grounding verdict."""
    sources = tuple(QaSource(s.index, s.title, s.section, s.text, s.source) for s in answer.sources)
    text = answer.answer.strip()
    if answer.notices:
        reasons: tuple[str, ...] = (f"notice: {answer.notices[0]}",)
    elif text in (NOTHING_RELEVANT_ZH, NOTHING_RELEVANT_EN):
        reasons = ("declined: nothing relevant retrieved",)
    else:
        # Citation numbers index the sources by their own numbers, which run 1..n.
        texts = [s.text for s in sorted(sources, key=lambda s: s.index)]
        reasons = checker.check(text, texts).reasons
    return QaItem(answer.question, topic, text, sources, answer.backend, not reasons, reasons)


def answer_questions(
    assistant: KnowledgeChat,
    questions: dict[str, list[str]],
    checker: GroundingChecker,
    cache: Path,
    stats: QaStats,
) -> list[QaItem]:
    """Every question answered by the pipeline, cached answers reused; in topic order."""
    cached = {dedup_key(str(r["question"])): QaItem.from_dict(r) for r in _read_cache(cache)}
    items = []
    for topic, qs in questions.items():
        for question in qs:
            stats.questions += 1
            key = dedup_key(question)
            item = cached.get(key)
            if item is None:
                item = judge(assistant.ask(question), topic, checker)
                _append(cache, item.to_dict())
                cached[key] = item
                stats.answered += 1
            else:
                stats.resumed += 1
            items.append(item)
    return items


# -- the output ---------------------------------------------------------------------------------------


def _split_value(question: str) -> float:
    """A stable number in [0, 1) per question: the same question always lands in the same split."""
    return int(hashlib.sha256(dedup_key(question).encode()).hexdigest()[:8], 16) / 2**32


def split_items(items: Sequence[QaItem], val_ratio: float) -> tuple[list[QaItem], list[QaItem]]:
    """(train, validation); validation gets at least one item when asked for and there are two or more."""
    val = [i for i in items if _split_value(i.question) < val_ratio]
    if val_ratio > 0 and not val and len(items) >= 2:
        val = [min(items, key=lambda i: _split_value(i.question))]
    chosen = {id(i) for i in val}
    return [i for i in items if id(i) not in chosen], val


def to_conversation(
    item: QaItem, system: str, with_passages: bool, context_tokens: int = 4096, max_tokens: int = 512
) -> Conversation:
    """The training example: the serving prompt and the cited answer, or the bare question and answer.

    ``context_tokens`` and ``max_tokens`` are the app's llm settings: the prompt fits the window it is served in.
    """
    if not with_passages:
        return sft_record(item.question, _CITATION.sub("", item.answer).strip(), system)
    passages = [
        Passage(Chunk(s.index, "", s.title, s.section, s.text, s.source), 1.0)
        for s in sorted(item.sources, key=lambda s: s.index)
    ]
    messages = build_messages(
        system, item.question, passages, (), context_tokens=context_tokens, history_tokens=0, max_tokens=max_tokens
    )
    return sft_record(messages[-1].content, item.answer, system)


def finalize(
    items: Iterable[QaItem],
    train_path: Path,
    val_path: Path,
    *,
    system: str,
    with_passages: bool,
    val_ratio: float,
    near_duplicate: float,
    context_tokens: int,
    max_tokens: int,
    stats: QaStats,
) -> QaStats:
    """Keep grounded, de-duplicated items; split them and write both files in xtuner's format."""
    dedup = Deduplicator(near_duplicate, shingle_size=2)
    kept = []
    for item in items:
        if not item.grounded:
            kind = item.reasons[0].split(":")[0].split(" ")[0] if item.reasons else "unknown"
            kind = "not covered" if kind == "sentence" else kind
            stats.rejected[kind] = stats.rejected.get(kind, 0) + 1
            continue
        stats.grounded += 1
        if dedup.check(item.question) is not None:
            stats.duplicates += 1
            continue
        kept.append(item)
    if not kept:
        raise QaDataError(
            f"none of the {stats.questions} answers was grounded in its sources ({stats.rejected}); check the "
            "knowledge base and the answer backend (llm.backend), or lower data.qa.min_coverage"
        )
    train, val = split_items(kept, val_ratio)
    for path, part in ((train_path, train), (val_path, val)):
        written = write_conversations(
            path, (to_conversation(i, system, with_passages, context_tokens, max_tokens) for i in part)
        )
        if path == train_path:
            stats.train = written
        else:
            stats.validation = written
    return stats


def build_qa(
    assistant: KnowledgeChat,
    out_dir: Path,
    *,
    system: str,
    generator: ChatModel | None,
    questions_per_topic: int = 5,
    temperature: float = 0.7,
    with_passages: bool = True,
    min_coverage: float = 0.8,
    near_duplicate: float = 0.85,
    val_ratio: float = 0.05,
    max_topics: int = 0,
    fresh: bool = False,
) -> QaStats:
    """The whole QA stage into ``out_dir`` (qa_train.jsonl, qa_val.jsonl and the two caches)."""
    from modules.rag.loader import load_documents

    paths = qa_paths(out_dir)
    if fresh:
        for cache in (paths["questions"], paths["raw"]):
            cache.unlink(missing_ok=True)
    documents = load_documents(assistant.knowledge_roots)
    topics = [Topic.from_document(d) for d in documents]
    if max_topics:
        topics = topics[:max_topics]
    if not topics:
        roots = ", ".join(str(r) for r in assistant.knowledge_roots)
        raise QaDataError(f"the knowledge base is empty ({roots}); set knowledge.paths in the app config")
    stats = QaStats(topics=len(topics))
    write = question_writer(generator, questions_per_topic, temperature)
    questions = topic_questions(topics, write, paths["questions"])
    checker = GroundingChecker(min_coverage, assistant.retriever.index.tokenizer.tokens)
    items = answer_questions(assistant, questions, checker, paths["raw"], stats)
    llm = assistant.settings.llm
    return finalize(
        items,
        paths["train"],
        paths["val"],
        system=system,
        with_passages=with_passages,
        val_ratio=val_ratio,
        near_duplicate=near_duplicate,
        context_tokens=llm.context_tokens,
        max_tokens=llm.max_tokens,
        stats=stats,
    )


def qa_paths(out_dir: Path) -> dict[str, Path]:
    """The QA stage's files: the two outputs and the two resume caches."""
    return {
        "train": out_dir / "qa_train.jsonl",
        "val": out_dir / "qa_val.jsonl",
        "questions": out_dir / "qa_questions.jsonl",
        "raw": out_dir / "qa_raw.jsonl",
    }


def iter_rejected(out_dir: Path) -> Iterator[QaItem]:
    """The cached answers that failed the grounding check, to read why."""
    for row in _read_cache(qa_paths(out_dir)["raw"]):
        item = QaItem.from_dict(row)
        if not item.grounded:
            yield item
