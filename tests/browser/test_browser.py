"""The app in a real browser: typed and spoken questions, the voice reply, a picture, and stop.

The app runs with the dev Whisper-base for voice input, espeak-ng for voice replies and a tiny random
Stable Diffusion pipeline for pictures; chromium's fake capture device plays a testdata WAV as the
microphone.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.app.serving import start_app
from tests.browser.conftest import launch_browser
from tests.conftest import REPO, SPEECH, dev_whisper, write_kb

pytestmark = pytest.mark.slow

TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.modules.image.tiny_sd import build_tiny_sd

    root = tmp_path_factory.mktemp("browser")
    (root / "kb").symlink_to(REPO / "assets" / "knowledge")  # the shipped knowledge base
    sd = build_tiny_sd(root / "sd")
    env = {
        "WULEWULE_ASR__BACKEND": "whisper",
        "WULEWULE_ASR__WHISPER__MODEL": dev_whisper(),
        "WULEWULE_TTS__BACKEND": "espeak",
        "WULEWULE_IMAGE__MODEL": str(sd),
        "WULEWULE_IMAGE__WIDTH": "64",
        "WULEWULE_IMAGE__HEIGHT": "64",
        "WULEWULE_IMAGE__STEPS": "2",
        "WULEWULE_IMAGE__SAFETY_CHECKER": "false",
    }
    for url in start_app(root, "browser", **env):
        yield url + "/"


@pytest.fixture
def page(playwright_instance: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    extra = getattr(request, "param", [])
    browser = launch_browser(playwright_instance, extra)
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()
    browser.close()


def bot_text(page: Any) -> str:
    return page.locator("#chatbot").inner_text()


def ask(page: Any, question: str) -> None:
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")


def test_a_typed_question_streams_a_cited_answer_with_sources(page: Any, app_url: str):
    page.goto(app_url)
    page.locator("#speak input").uncheck()
    ask(page, "红孩儿的父亲是谁？")
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('牛魔王')")
    page.get_by_text("来源 / Sources", exact=False).first.wait_for()
    text = bot_text(page)
    assert "红孩儿的父亲是谁？" in text and "[1]" in text


def test_html_in_a_question_is_shown_as_text_never_run(page: Any, app_url: str):
    page.goto(app_url)
    page.locator("#speak input").uncheck()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    ask(page, "<img src=x onerror=alert(1)><script>alert(2)</script>黄眉是谁")
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('<img src=x')")
    page.wait_for_timeout(500)
    assert dialogs == []
    assert page.locator("#chatbot img[src='x']").count() == 0


def wav_for_chromium(src: Path, out: Path) -> Path:
    """Chromium's fake microphone plays 16-bit PCM WAV; pad a second of silence after the question."""
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(src),
            "-af",
            "apad=pad_dur=1.5",
            "-ac",
            "1",
            "-ar",
            "48000",
            "-c:a",
            "pcm_s16le",
            str(out),
        ],
        check=True,
    )
    return out


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return wav_for_chromium(SPEECH / "zh_01.wav", tmp_path_factory.mktemp("mic") / "zh_01.wav")


@pytest.fixture
def mic_page(playwright_instance: Any, mic_wav: Path) -> Iterator[Any]:
    args = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic_wav}%noloop",
    ]
    browser = launch_browser(playwright_instance, args)
    context = browser.new_context(locale="zh-CN", permissions=["microphone"])
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()
    browser.close()


def test_a_spoken_question_shows_the_transcript_the_answer_and_the_voice(mic_page: Any, app_url: str):
    page = mic_page
    page.goto(app_url)
    page.locator("#mic").get_by_role("button", name=re.compile("Record|录制|录音", re.I)).first.click()
    page.wait_for_timeout(3500)  # the 2 s question plus its padding
    page.locator("#mic").get_by_role("button", name=re.compile("Stop|停止", re.I)).first.click()
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('黑熊精')")
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('黑风山')")
    # The voice reply: the output player gets a source once the first sentence is spoken.
    page.wait_for_function(
        "(() => { const a = document.querySelector('#voice audio');"
        " return a && (a.currentSrc || a.src) && a.readyState >= 1; })()"
    )


def test_a_drawing_request_shows_the_picture_and_its_seed(page: Any, app_url: str):
    page.goto(app_url)
    page.locator("#speak input").uncheck()
    ask(page, "画一个在雪山上手持长棍的天命人，水墨风")
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('seed=')")
    page.locator("#chatbot img").first.wait_for()  # the picture, served once its message renders
    assert "提示词" in bot_text(page)
    page.get_by_role("tab", name=re.compile("画廊")).click()
    page.locator("#gallery img").first.wait_for()


@pytest.fixture(scope="module")
def slow_app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.app.test_faults import start_fake_llm

    root = tmp_path_factory.mktemp("slow")
    write_kb(root / "kb")
    proc, llm_url = start_fake_llm("--delay", "0.5")
    env = {
        "WULEWULE_LLM__BACKEND": "openai",
        "WULEWULE_LLM__OPENAI__BASE_URL": llm_url,
        "WULEWULE_LLM__OPENAI__MODEL": "fake",
        "WULEWULE_TTS__VOICE_REPLIES": "false",
    }
    try:
        for url in start_app(root, "slow", **env):
            yield url + "/"
    finally:
        proc.kill()
        proc.wait()


def test_stop_cuts_the_answer_and_the_chat_goes_on(page: Any, slow_app_url: str):
    page.goto(slow_app_url)
    ask(page, "黄眉原本是谁的童子？")
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('弥勒佛')")
    page.locator("#stop").click()
    page.wait_for_timeout(2500)  # the whole answer would take 7 s
    stopped = bot_text(page)
    assert "假雷音寺" not in stopped
    page.wait_for_timeout(1500)
    assert bot_text(page) == stopped  # nothing more arrives after stop
    ask(page, "红孩儿的父亲是谁？")  # and the next question is answered
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('红孩儿的父亲是谁？')")
    page.wait_for_function("document.querySelector('#chatbot').innerText.split('假雷音寺').length >= 2")
    assert "黄眉原本是谁的童子？" in bot_text(page)  # the conversation so far is kept


# -- hands-free conversation -------------------------------------------------------------------


def looped_mic_wav(src: Path, out: Path, lead_s: float, tail_s: float) -> Path:
    """A microphone recording for chromium's fake capture device, which plays it in a loop: silence, the
    question, silence. (The page's push-to-talk microphone opens the device first, so a file played once
    could be over before hands-free listening starts.)"""
    delay = int(lead_s * 1000)
    shape = f"adelay={delay}|{delay},apad=pad_dur={tail_s}"
    command = ["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), "-af", shape, "-ac", "1", "-ar", "48000"]
    subprocess.run([*command, "-c:a", "pcm_s16le", str(out)], check=True)
    return out


def fake_mic_page(playwright_instance: Any, wav: Path) -> Any:
    args = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
    ]
    browser = launch_browser(playwright_instance, args)
    context = browser.new_context(locale="zh-CN", permissions=["microphone"])
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return browser, page


def start_hands_free(page: Any, url: str) -> None:
    page.goto(url)
    page.locator("#hands-free input").check()
    page.locator("#live-mic").get_by_role("button", name=re.compile("Record|录制|录音", re.I)).first.click()


@pytest.fixture
def hands_free_page(playwright_instance: Any, tmp_path: Path) -> Iterator[Any]:
    wav = looped_mic_wav(SPEECH / "zh_01.wav", tmp_path / "hands_free.wav", lead_s=1.5, tail_s=8)
    browser, page = fake_mic_page(playwright_instance, wav)
    yield page
    browser.close()


def test_hands_free_a_question_is_heard_without_a_click_and_answered_aloud(hands_free_page: Any, app_url: str):
    page = hands_free_page
    start_hands_free(page, app_url)
    # Nobody presses stop: the pause after the question ends the turn, and the answer comes, cited and voiced.
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('黑熊精')")
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('黑风山')")
    page.get_by_text("来源 / Sources", exact=False).first.wait_for()
    page.wait_for_function(
        "(() => { const a = document.querySelector('#voice audio');"
        " return a && (a.currentSrc || a.src) && a.readyState >= 1; })()"
    )
    # The microphone was opened with echo cancellation, so the companion's voice does not cut him off.
    mic = page.evaluate("window.wulewuleMic")
    assert mic and mic["echoCancellation"] is True


@pytest.fixture
def barge_in_page(playwright_instance: Any, tmp_path: Path) -> Iterator[Any]:
    # The question comes again every 9 s: the second time while the first answer (some 30 s of voice) is
    # still being spoken. The 7 s between one question's end and the next leave a busy machine time to
    # hear the first and start its answer (with 3.5 s, a slow recognition let each question cut off the
    # answer before it was written).
    wav = looped_mic_wav(SPEECH / "zh_01.wav", tmp_path / "barge_in.wav", lead_s=1.0, tail_s=6.0)
    browser, page = fake_mic_page(playwright_instance, wav)
    yield page
    browser.close()


def test_hands_free_talking_over_the_answer_stops_it(barge_in_page: Any, app_url: str):
    page = barge_in_page
    start_hands_free(page, app_url)
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('黑风山')")
    # The player speaks again while Wukong talks: the voice stops, the answer is marked as cut ...
    page.wait_for_function("window.wulewuleVoiceStopped !== undefined")
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('（被打断）')")
    # ... and the new turn is heard and answered.
    page.wait_for_function("document.querySelector('#chatbot').innerText.split('黑风山').length >= 3")


# -- the look ------------------------------------------------------------------------------------

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"


def rgb(page: Any, selector: str, prop: str) -> str:
    page.locator(selector).first.wait_for()
    return page.locator(selector).first.evaluate(f"(e) => getComputedStyle(e)[{prop!r}]")


def test_the_theme_is_applied(page: Any, app_url: str):
    page.goto(app_url)
    page.locator("#header h1").wait_for()
    assert rgb(page, "body", "backgroundColor") == "rgb(246, 240, 228)"  # warm paper
    assert "Noto Serif CJK SC" in rgb(page, "#header h1", "fontFamily")  # a Chinese serif for headings
    assert rgb(page, "#send", "backgroundColor") == "rgb(212, 164, 55)"  # gold
    page.locator("#speak input").uncheck()
    ask(page, "红孩儿的父亲是谁？")
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('牛魔王')")
    avatars = page.locator("#chatbot img").evaluate_all("imgs => imgs.map(i => i.getAttribute('src') || '')")
    assert any("wukong.svg" in a for a in avatars) and any("player.svg" in a for a in avatars)


def test_clicking_a_citation_opens_its_passage_in_place(page: Any, app_url: str):
    page.goto(app_url)
    page.locator("#speak input").uncheck()
    ask(page, "黄眉在原著里是谁的童子？")
    link = page.locator("#chatbot a.cite").first
    link.wait_for()
    number = link.inner_text()  # "[2]": the answer's first citation
    link.click()
    pop = page.locator("#cite-pop")
    pop.wait_for()
    text = pop.inner_text()
    assert text.startswith(number) and "assets/knowledge/" in text and len(text) > 40
    page.keyboard.press("Escape")
    assert page.locator("#cite-pop").count() == 0


def test_enter_sends_and_shift_enter_starts_a_new_line(page: Any, app_url: str):
    page.goto(app_url)
    page.locator("#speak input").uncheck()
    box = page.locator("#question textarea")
    box.click()
    page.keyboard.type("红孩儿的父亲")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("是谁？")
    assert box.input_value() == "红孩儿的父亲\n是谁？"
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('牛魔王')")
    assert box.input_value() == ""


def test_the_stop_button_shows_only_while_something_runs(page: Any, slow_app_url: str):
    page.goto(slow_app_url)
    stop = page.locator("#stop")
    page.wait_for_timeout(500)
    assert not stop.is_visible()  # nothing runs yet
    ask(page, "黄眉原本是谁的童子？")
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('弥勒佛')")
    assert stop.is_visible()
    stop.click()
    stop.wait_for(state="hidden", timeout=15_000)  # stopped: nothing runs
    ask(page, "红孩儿的父亲是谁？")
    stop.wait_for(state="visible", timeout=15_000)
    page.wait_for_function("document.querySelector('#chatbot').innerText.split('假雷音寺').length >= 2")
    stop.wait_for(state="hidden", timeout=10_000)  # the answer ended by itself


def test_the_stop_button_stays_while_the_voice_plays_and_stops_it(page: Any, app_url: str):
    page.goto(app_url)
    stop = page.locator("#stop")
    ask(page, "红孩儿的父亲是谁？")
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('牛魔王')")
    # The answer is written and its event is over, but Wukong is still speaking it.
    page.wait_for_function("!document.querySelector('#voice-file .wrap:not(.hide)')")
    page.wait_for_function("[...document.querySelectorAll('#voice audio')].some(a => !a.paused && a.currentTime > 0)")
    assert stop.is_visible()
    stop.click()
    stop.wait_for(state="hidden", timeout=5_000)
    assert page.evaluate("[...document.querySelectorAll('#voice audio')].every(a => a.paused)")


def test_esc_stops_the_answer_like_the_stop_button(page: Any, slow_app_url: str):
    page.goto(slow_app_url)
    ask(page, "黄眉原本是谁的童子？")
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('弥勒佛')")
    page.keyboard.press("Escape")
    page.wait_for_timeout(300)
    stopped = bot_text(page)
    page.wait_for_timeout(1500)
    assert bot_text(page) == stopped and "假雷音寺" not in stopped


def test_phone_width_has_no_horizontal_scroll(playwright_instance: Any, app_url: str):
    browser = launch_browser(playwright_instance)
    context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(app_url)
        page.locator("#speak input").uncheck()
        ask(page, "黑熊精在哪里打？怎么打？")
        page.wait_for_function("document.querySelector('#chatbot').innerText.includes('黑风山')")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        for control in ("#question textarea", "#mic", "#voice", "#send"):
            box = page.locator(control).first.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, control
    finally:
        browser.close()


def test_no_serious_accessibility_violations(page: Any, app_url: str):
    assert AXE.is_file(), "axe-core is missing: (cd tests/browser && npm ci)"
    page.goto(app_url)
    page.locator("#speak input").uncheck()
    ask(page, "红孩儿的父亲是谁？")
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('牛魔王')")
    page.add_script_tag(path=str(AXE))
    page.locator("#chatbot .title[role=button]").first.click()  # the sources block opens and closes as before
    page.get_by_text("assets/knowledge/", exact=False).first.wait_for()
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    serious = [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not serious, "\n".join(serious)


def test_the_compendium_lists_every_shelf_opens_an_entry_and_asks_about_it(page: Any, app_url: str):
    page.goto(app_url)
    page.get_by_role("tab", name=re.compile("图鉴")).click()
    shelves = page.locator("#compendium-shelf")
    for label in ("章节", "妖王", "人物", "地点", "法术与变化", "物品", "剧情与结局"):
        shelves.get_by_text(label, exact=False).first.wait_for()
    shelves.get_by_text("妖王", exact=False).first.click()
    page.locator("#compendium-list").get_by_text("黄眉", exact=True).first.click()
    page.wait_for_function("document.querySelector('#compendium-entry').innerText.includes('小雷音寺')")
    assert "assets/knowledge/bosses/" in page.locator("#compendium-entry").inner_text()
    page.locator("#compendium-ask").click()
    page.wait_for_function("document.querySelector('#question textarea').value.includes('黄眉')")
    assert page.locator("#question textarea").is_visible()  # back on the chat, the question ready to send
