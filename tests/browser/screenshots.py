"""The README's pictures, taken from the real app in chromium the way the browser tests drive it.

    eval "$(../shared/dev-models/fetch)"   # the dev Whisper-base, for the voice turn
    .venv/bin/python -m tests.browser.screenshots [--out docs/images]

Starts the app on the shipped knowledge base with the espeak voice, the dev Whisper-base and a tiny random
Stable Diffusion (its pictures are noise: the screenshot shows the turn, not art), then saves small PNGs
(256 colours, at most 200 KB each): chat.png (an answer with its sources and a citation open), voice.png
(a spoken question), drawing.png (a drawing turn), compendium.png (the 图鉴 tab) and phone.png (390×844).
"""

from __future__ import annotations

import argparse
import io
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from tests.app.serving import start_app
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.test_browser import looped_mic_wav
from tests.conftest import REPO, SPEECH, dev_whisper

MAX_BYTES = 200_000


def save_small(png: bytes, path: Path) -> int:
    """The screenshot as a 256-colour PNG, shrunk until it is at most MAX_BYTES; returns its size."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    while True:
        out = io.BytesIO()
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, "PNG", optimize=True)
        if out.tell() <= MAX_BYTES or image.width < 400:
            path.write_bytes(out.getvalue())
            return out.tell()
        image = image.resize((int(image.width * 0.85), int(image.height * 0.85)), Image.Resampling.LANCZOS)


def ask(page: Any, question: str) -> None:
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")


def chat(page: Any) -> None:
    page.locator("#speak input").uncheck()
    ask(page, "黄眉在原著里是谁的童子？")
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('弥勒')")
    page.locator("#chatbot .title[role=button]").first.click()
    page.locator("#chatbot a.cite").first.click()
    page.wait_for_timeout(400)


def voice(page: Any) -> None:
    page.locator("#mic").get_by_role("button", name=re.compile("Record|录制|录音", re.I)).first.click()
    page.wait_for_timeout(3500)
    page.locator("#mic").get_by_role("button", name=re.compile("Stop|停止", re.I)).first.click()
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('黑风山')")
    page.wait_for_timeout(1500)


def drawing(page: Any) -> None:
    page.locator("#speak input").uncheck()
    ask(page, "画一个在雪山上手持长棍的天命人，水墨风")
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('seed=')")
    page.locator("#chatbot img[alt]").last.wait_for()
    page.wait_for_timeout(500)


def compendium(page: Any) -> None:
    page.get_by_role("tab", name=re.compile("图鉴")).click()
    page.locator("#compendium-shelf").get_by_text("章节", exact=False).first.click()
    page.locator("#compendium-list").get_by_text("黄眉", exact=False).first.click()
    page.wait_for_function("document.querySelector('#compendium-entry').innerText.includes('小雷音寺')")
    page.wait_for_timeout(800)


def phone(page: Any) -> None:
    page.locator("#speak input").uncheck()
    ask(page, "黑熊精在哪里打？")
    page.wait_for_function("document.querySelector('#chatbot').innerText.includes('黑风山')")
    page.wait_for_timeout(500)


SHOTS: dict[str, tuple[Callable[[Any], None], dict[str, int]]] = {
    "chat": (chat, {"width": 1100, "height": 820}),
    "voice": (voice, {"width": 1100, "height": 900}),
    "drawing": (drawing, {"width": 1100, "height": 820}),
    "compendium": (compendium, {"width": 1100, "height": 820}),
    "phone": (phone, {"width": 390, "height": 844}),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--only", nargs="*", choices=sorted(SHOTS), help="take only these")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from tests.modules.image.tiny_sd import build_tiny_sd

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "kb").symlink_to(REPO / "assets" / "knowledge")
        env = {
            "WULEWULE_ASR__BACKEND": "whisper",
            "WULEWULE_ASR__WHISPER__MODEL": dev_whisper(),
            "WULEWULE_TTS__BACKEND": "espeak",
            "WULEWULE_IMAGE__MODEL": str(build_tiny_sd(root / "sd")),
            "WULEWULE_IMAGE__WIDTH": "64",
            "WULEWULE_IMAGE__HEIGHT": "64",
            "WULEWULE_IMAGE__STEPS": "2",
            "WULEWULE_IMAGE__SAFETY_CHECKER": "false",
        }
        mic = looped_mic_wav(SPEECH / "zh_01.wav", root / "mic.wav", lead_s=0.3, tail_s=12)
        fake_mic = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
        for url in start_app(root, "screenshots", **env):
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM,
                    headless=True,
                    args=[*CHROMIUM_ARGS, *fake_mic, f"--use-file-for-fake-audio-capture={mic}"],
                )
                for name, (take, viewport) in SHOTS.items():
                    if args.only and name not in args.only:
                        continue
                    context = browser.new_context(
                        locale="zh-CN", viewport=viewport, permissions=["microphone"], device_scale_factor=1
                    )
                    page = context.new_page()
                    page.set_default_timeout(90_000)
                    page.goto(url + "/")
                    take(page)
                    size = save_small(page.screenshot(), args.out / f"{name}.png")
                    print(f"{args.out / f'{name}.png'}: {size / 1000:.0f} KB")
                    context.close()
                browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
