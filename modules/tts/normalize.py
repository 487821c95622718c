"""Text made speakable: no citations, Markdown or emoji; numbers and dates read out; long sentences cut.

An answer is written to be read: ``[1]`` citations, ``**bold**``, list bullets, ``2024年8月20日``.
Speech wants words. ``normalize_for_speech`` rewrites one piece of answer text into what a voice
should say, in the answer's language: digits become Chinese numerals in Chinese text (dates and
ordinals the Chinese way: 二零二四年八月二十日, 第三回, 百分之十, 七十二变) and English words in
English text; English words inside Chinese text stay as they are, for the English voice.
``speech_segments`` then cuts it into pieces no longer than ``max_chars`` at natural pauses
(，、；：), because both backends read long inputs worse (ChatTTS drifts, espeak runs out of breath).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Lang = Literal["auto", "zh", "en"]

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{_CJK}]")

# --- markup -------------------------------------------------------------------------------------
_CODE_FENCE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"`([^`\n]*)`")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
# [1] [2][3] [1, 2] [1-3] 【1】 [^1]: citation and footnote markers, never spoken.
_CITATION = re.compile(r"\[\^?\s*\d+(?:\s*[,，、\-–~]\s*\d+)*\s*\]|【\s*\d+(?:\s*[,，、\-–]\s*\d+)*\s*】")
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_URL = re.compile(r"https?://\S+|www\.\S+")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*", re.MULTILINE)
_QUOTE = re.compile(r"^\s*>+\s?", re.MULTILINE)
_BULLET = re.compile(r"^\s*(?:[-*+•·]|\d{1,3}[.)、])\s+", re.MULTILINE)
_RULE = re.compile(r"^\s*(?:[-*_]\s*){3,}$", re.MULTILINE)
_TABLE_RULE = re.compile(r"^\s*\|?(?:\s*:?-{2,}:?\s*\|)+\s*:?-*:?\s*$", re.MULTILINE)
_UNDERSCORE_EMPHASIS = re.compile(r"(?<![\w])_{1,2}(\S(?:.*?\S)?)_{1,2}(?![\w])")

# --- numbers ------------------------------------------------------------------------------------
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)")
_ZH_DATE = re.compile(r"(?<!\d)(\d{4})年(?:(\d{1,2})月(?:(\d{1,2})[日号])?)?")
_TIME = re.compile(r"(?<!\d)(\d{1,2})[:：](\d{2})(?::(\d{2}))?(?!\d)")
_PERCENT = re.compile(r"(?<![\d.])(-?\d+(?:\.\d+)?)\s*[%％]")
_FRACTION = re.compile(r"(?<![\d./])(\d+)/(\d+)(?![\d/])")
# "3-5" and "3 ~ 5" are ranges; "3 -5" is a number and a negative one.
_RANGE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(?:[~～\-–—]|\s+[~～\-–—]\s+)(\d+(?:\.\d+)?)(?![\d.])")
_DOTTED = re.compile(r"(?<![\d.])\d+(?:\.\d+){2,}(?![\d.])")  # version numbers: 1.2.3
_ORDINAL_EN = re.compile(r"(?<!\d)(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_CURRENCY_EN = re.compile(r"\$\s?(\d+(?:\.\d+)?)")
_NUMBER = re.compile(r"(?<![A-Za-z0-9.])(-)?(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)")
_MAX_CARDINAL_DIGITS = 10  # 11+ digits is a phone number or an id, read digit by digit
_LIANG_CLASSIFIERS = "个只位次件条张把种名头本块样天"  # "2个" reads 两个, "第2回" stays 第二回

_ZH_DIGITS = "零一二三四五六七八九"
_EN_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
            "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]  # fmt: skip
_EN_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_EN_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_EN_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                         "nine": "ninth", "twelve": "twelfth"}  # fmt: skip
_MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December"]  # fmt: skip

# --- symbols ------------------------------------------------------------------------------------
_KEEP_PUNCT = set(",.!?;:'\"()-，。！？、；：“”‘’（）《》「」『』—…·")
_SYMBOL_WORDS = {
    "zh": {"&": "和", "℃": "摄氏度", "°C": "摄氏度", "°": "度", "+": "加", "×": "乘", "=": "等于", "→": "，"},
    "en": {"&": " and ", "℃": " degrees Celsius", "°C": " degrees Celsius", "°": " degrees", "+": " plus ",
           "×": " times ", "=": " equals ", "→": ", "},
}  # fmt: skip
_STRONG_PAUSE = "。！？!?…"
_WEAK_PAUSE = "，、；：,;:"


def detect_lang(text: str) -> Literal["zh", "en"]:
    """ "zh" when the text holds any Chinese character, else "en"."""
    return "zh" if _CJK_RE.search(text) else "en"


def strip_markup(text: str) -> str:
    """Citation markers, Markdown, HTML tags and URLs removed; link texts and code contents kept."""
    text = _CODE_FENCE.sub(" ", text)  # a code block is not something to read aloud
    text = _INLINE_CODE.sub(r"\1", text)
    text = _CITATION.sub("", text)  # before links: "[2][3]" is two citations, not a reference link
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    text = _URL.sub("", text)
    text = _TABLE_RULE.sub("", text)
    text = _RULE.sub("", text)
    text = _HEADING.sub("", text)
    text = _QUOTE.sub("", text)
    text = _BULLET.sub("", text)
    text = text.replace("**", "").replace("~~", "").replace("*", "")
    text = _UNDERSCORE_EMPHASIS.sub(r"\1", text)
    # Table cells become a list read with pauses.
    return re.sub(r"\s*\|\s*", "，", text.strip("|")) if "|" in text else text


# --- Chinese numbers ----------------------------------------------------------------------------
def zh_digits(digits: str) -> str:
    """Digit by digit, the way years and phone numbers are read: 2024 -> 二零二四."""
    return "".join(_ZH_DIGITS[int(d)] for d in digits if d.isdigit())


def zh_number(number: str) -> str:
    """A cardinal or decimal read the Chinese way: 72 -> 七十二, 3.5 -> 三点五, 10000 -> 一万."""
    import cn2an

    whole, _, frac = number.partition(".")
    # Long digit strings (phone numbers, ids) and zero-led ones (007) are read digit by digit.
    if len(whole) > _MAX_CARDINAL_DIGITS or (len(whole) > 1 and whole.startswith("0")):
        spoken = zh_digits(whole)
    else:
        spoken = cn2an.an2cn(whole, "low")
    return spoken + ("点" + zh_digits(frac) if frac else "")


def _zh_numbers(text: str) -> str:
    def date(m: re.Match[str]) -> str:
        year, month, day = m.group(1), m.group(2), m.group(3)
        out = zh_digits(year) + "年"
        if month:
            out += zh_number(str(int(month))) + "月"
        if day:
            out += zh_number(str(int(day))) + "日"
        return out

    def time(m: re.Match[str]) -> str:
        hour, minute, second = int(m.group(1)), int(m.group(2)), m.group(3)
        out = zh_number(str(hour)) + "点"
        if minute:
            out += ("零" if minute < 10 else "") + zh_number(str(minute)) + "分"
        if second and int(second):
            out += zh_number(str(int(second))) + "秒"
        return out

    def percent(m: re.Match[str]) -> str:
        value = m.group(1)
        sign = "负" if value.startswith("-") else ""
        return sign + "百分之" + zh_number(value.lstrip("-"))

    def number(m: re.Match[str]) -> str:
        sign, value = (m.group(1), m.group(2)) if m.group(2) is not None else ("", m.group(3))
        following, before = m.string[m.end() : m.end() + 1], m.string[: m.start()]
        if value == "2" and following and following in _LIANG_CLASSIFIERS and not before.endswith("第"):
            return ("负" if sign else "") + "两"
        return ("负" if sign else "") + zh_number(value)

    text = _ISO_DATE.sub(date, text)
    text = _ZH_DATE.sub(date, text)
    text = _TIME.sub(time, text)
    text = _PERCENT.sub(percent, text)
    text = _FRACTION.sub(lambda m: zh_number(m.group(2)) + "分之" + zh_number(m.group(1)), text)
    text = _RANGE.sub(lambda m: zh_number(m.group(1)) + "到" + zh_number(m.group(2)), text)
    text = _DOTTED.sub(lambda m: "点".join(zh_digits(part) for part in m.group(0).split(".")), text)
    return _NUMBER.sub(number, text)


# --- English numbers ----------------------------------------------------------------------------
def en_number(n: int) -> str:
    """A cardinal in words: 1800 -> one thousand eight hundred."""
    if n < 0:
        return "minus " + en_number(-n)
    if n < 20:
        return _EN_ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _EN_TENS[tens] + ("-" + _EN_ONES[ones] if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _EN_ONES[hundreds] + " hundred" + (" " + en_number(rest) if rest else "")
    for scale, name in _EN_SCALES:
        if n >= scale:
            head, rest = divmod(n, scale)
            return en_number(head) + " " + name + (" " + en_number(rest) if rest else "")
    raise AssertionError("unreachable")  # pragma: no cover


def en_year(n: int) -> str:
    """A year the way it is said: 1995 -> nineteen ninety-five, 2005 -> two thousand five."""
    if 2000 <= n <= 2009 or n % 1000 == 0:
        return en_number(n)
    high, low = divmod(n, 100)
    if low == 0:
        return en_number(high) + " hundred"
    return en_number(high) + " " + ("oh " + _EN_ONES[low] if low < 10 else en_number(low))


def en_ordinal(n: int) -> str:
    """21 -> twenty-first."""
    words = en_number(n)
    head, sep, last = words.rpartition(" " if "-" not in words.rsplit(" ", 1)[-1] else "-")
    if last in _EN_ORDINAL_IRREGULAR:
        last = _EN_ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def _en_decimal(value: str) -> str:
    whole, _, frac = value.partition(".")
    if len(whole) > _MAX_CARDINAL_DIGITS or (len(whole) > 1 and whole.startswith("0")):
        spoken = " ".join(_EN_ONES[int(d)] for d in whole)
    else:
        spoken = en_number(int(whole))
    return spoken + (" point " + " ".join(_EN_ONES[int(d)] for d in frac) if frac else "")


def _en_numbers(text: str) -> str:
    def iso_date(m: re.Match[str]) -> str:
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if not 1 <= month <= 12:
            return m.group(0).replace("-", " ").replace("/", " ").replace(".", " ")
        return f"{_MONTHS_EN[month - 1]} {en_ordinal(day)}, {en_year(year)}"

    def time(m: re.Match[str]) -> str:
        hour, minute = int(m.group(1)), int(m.group(2))
        if minute == 0:
            return en_number(hour) + " o'clock"
        return en_number(hour) + " " + ("oh " + _EN_ONES[minute] if minute < 10 else en_number(minute))

    def number(m: re.Match[str]) -> str:
        sign, value = (m.group(1), m.group(2)) if m.group(2) is not None else ("", m.group(3))
        if not sign and "." not in value and len(value) == 4 and 1100 <= int(value) <= 2099:
            return en_year(int(value))
        return ("minus " if sign else "") + _en_decimal(value)

    text = _ISO_DATE.sub(iso_date, text)
    text = _TIME.sub(time, text)
    text = _CURRENCY_EN.sub(lambda m: m.group(1) + " dollars", text)
    text = _PERCENT.sub(lambda m: m.group(1) + " percent", text)
    text = _ORDINAL_EN.sub(lambda m: en_ordinal(int(m.group(1))), text)
    text = _FRACTION.sub(lambda m: m.group(1) + " over " + m.group(2), text)
    text = _RANGE.sub(lambda m: m.group(1) + " to " + m.group(2), text)
    text = _DOTTED.sub(lambda m: " point ".join(m.group(0).split(".")), text)
    return _NUMBER.sub(number, text)


# --- symbols and spacing ------------------------------------------------------------------------
def _speakable_char(ch: str) -> bool:
    if ch in _KEEP_PUNCT or ch.isspace():
        return True
    category = unicodedata.category(ch)
    # Letters and digits are read; symbols (emoji, arrows, box drawing), marks (emoji variation
    # selectors, skin tones), format and private-use characters are not.
    return category[0] in "LN"


def _symbols(text: str, lang: Literal["zh", "en"]) -> str:
    for symbol, words in _SYMBOL_WORDS[lang].items():
        text = text.replace(symbol, words)
    return "".join(ch if _speakable_char(ch) else " " for ch in text)


def _tidy(text: str, lang: Literal["zh", "en"]) -> str:
    lines = []
    for raw in text.splitlines():
        line = re.sub(r"[ \t\u3000]+", " ", raw).strip(" -")
        if not line:
            continue
        # A line without closing punctuation (a heading, a list item) still ends where it ends.
        if line[-1] not in _STRONG_PAUSE + _WEAK_PAUSE + ".":
            line += "。" if lang == "zh" and _CJK_RE.search(line) else "."
        lines.append(line)
    text = " ".join(lines)
    text = re.sub(f"(?<=[{_CJK}，。！？、；：“”（）]) (?=[{_CJK}，。！？、；：“”（）])", "", text)
    text = re.sub(r"\s+([,.!?;:，。！？、；：])", r"\1", text)
    text = re.sub(r"([，。！？、；：,;:])\1+", r"\1", text)  # "，，" left where a citation or emoji was
    text = re.sub(r"^[，。、；：,.;:\s]+", "", text)
    return text.strip()


def normalize_for_speech(text: str, lang: Lang = "auto") -> str:
    """What a voice should say for this answer text (see the module docstring); "" if nothing is speakable."""
    if lang not in ("auto", "zh", "en"):
        raise ValueError(f"lang must be 'auto', 'zh' or 'en', got {lang!r}")
    text = unicodedata.normalize("NFC", text)
    text = strip_markup(text)
    spoken_lang: Literal["zh", "en"] = detect_lang(text) if lang == "auto" else lang
    text = _THOUSANDS.sub("", text)
    text = _zh_numbers(text) if spoken_lang == "zh" else _en_numbers(text)
    text = _symbols(text, spoken_lang)
    text = _tidy(text, spoken_lang)
    return text if any(ch.isalnum() for ch in text) else ""


def split_long(text: str, max_chars: int) -> list[str]:
    """Cut text into pieces of at most max_chars, at sentence ends first, then at pauses, then at spaces."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    sentences = [s for s in re.split(f"(?<=[{_STRONG_PAUSE}])|(?<=\\.)\\s+", text) if s and s.strip()]
    pieces: list[str] = []
    for sentence in sentences:
        sentence = sentence.strip()
        if len(sentence) <= max_chars:
            pieces.append(sentence)
            continue
        clauses = [c for c in re.split(f"(?<=[{_WEAK_PAUSE}])", sentence) if c.strip()]
        current = ""
        for clause in clauses:
            for part in _hard_split(clause.strip(), max_chars):
                joiner = " " if current and not _CJK_RE.search(current[-1] + part[0]) else ""
                if current and len(current) + len(joiner) + len(part) > max_chars:
                    pieces.append(current)
                    current = part
                else:
                    current = current + joiner + part if current else part
        if current:
            pieces.append(current)
    return pieces


def _hard_split(clause: str, max_chars: int) -> list[str]:
    """A clause with no pause in it: cut at the last space before the limit, else at the limit."""
    out = []
    while len(clause) > max_chars:
        cut = clause.rfind(" ", 1, max_chars + 1)
        cut = cut if cut > 0 else max_chars
        out.append(clause[:cut].strip())
        clause = clause[cut:].strip()
    if clause:
        out.append(clause)
    return out


def speech_segments(text: str, lang: Lang = "auto", max_chars: int = 80) -> list[str]:
    """normalize_for_speech, then split_long: the pieces handed to a synthesizer, in order."""
    spoken = normalize_for_speech(text, lang)
    return split_long(spoken, max_chars) if spoken else []
