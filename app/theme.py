"""The look: ink black and warm paper with gold, a Chinese serif for headings, light and dark.

Everything the browser gets besides Gradio's own: the theme (``wukong_theme``), the CSS (``CSS``) and the
page head (``HEAD``): the microphone's echo cancellation, clickable citations, Esc to stop, the stop
button shown only while something runs. No web fonts are fetched (the app works offline): the font
stacks name the CJK fonts players have (Noto/Source Han, PingFang, Microsoft YaHei, Songti) and fall
back to the system's.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "ui"
AVATARS = (str(ASSETS / "player.svg"), str(ASSETS / "wukong.svg"))  # (the player, Wukong): drawn for this app

INK = "#14110f"
PAPER = "#f6f0e4"
GOLD = "#b8862b"

SERIF = ["Noto Serif CJK SC", "Source Han Serif SC", "Songti SC", "STSong", "SimSun", "serif"]
SANS = ["Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", "system-ui", "sans-serif"]

_GOLD = gr.themes.Color(
    c50="#fbf5e6",
    c100="#f4e6c2",
    c200="#ead293",
    c300="#dfbc63",
    c400="#d4a437",
    c500="#b8862b",
    c600="#966a20",
    c700="#74511a",
    c800="#553b14",
    c900="#3a280e",
    c950="#24190a",
    name="gold",
)


def wukong_theme() -> gr.themes.Base:
    """Gradio's base theme in the game's colours; every component reads these variables."""
    fonts = [gr.themes.Font(name) for name in SANS[:-2]] + SANS[-2:]
    return gr.themes.Base(
        primary_hue=_GOLD,
        secondary_hue=_GOLD,
        neutral_hue=gr.themes.colors.stone,
        font=fonts,
        font_mono=[gr.themes.Font("Noto Sans Mono CJK SC"), "ui-monospace", "monospace"],
        radius_size=gr.themes.sizes.radius_sm,
    ).set(
        body_background_fill=PAPER,
        body_background_fill_dark=INK,
        body_text_color="#1d1a16",
        body_text_color_dark="#efe6d2",
        body_text_color_subdued="#5b5142",
        body_text_color_subdued_dark="#bfb39a",
        background_fill_primary="#fbf7ee",
        background_fill_primary_dark="#1d1915",
        background_fill_secondary="#f1e8d6",
        background_fill_secondary_dark="#26211b",
        block_background_fill="#fbf7ee",
        block_background_fill_dark="#1d1915",
        block_border_color="#dccaa2",
        block_border_color_dark="#3b3227",
        block_label_text_color="#5b5142",
        block_label_text_color_dark="#d9c9a6",
        border_color_primary="#dccaa2",
        border_color_primary_dark="#3b3227",
        input_background_fill="#fffdf7",
        input_background_fill_dark="#14110f",
        button_primary_background_fill="#d4a437",
        button_primary_background_fill_hover="#dfbc63",
        button_primary_background_fill_dark="#d4a437",
        button_primary_background_fill_hover_dark="#dfbc63",
        button_primary_text_color=INK,
        button_primary_text_color_dark=INK,
        button_secondary_background_fill="#efe4cc",
        button_secondary_background_fill_dark="#2b241d",
        button_secondary_text_color="#1d1a16",
        button_secondary_text_color_dark="#efe6d2",
        button_cancel_background_fill="#7a1f16",
        button_cancel_background_fill_dark="#a3342a",
        button_cancel_text_color="#ffffff",
        button_cancel_text_color_dark="#ffffff",
        link_text_color="#74511a",
        link_text_color_dark="#dfbc63",
        link_text_color_hover="#3a280e",
        link_text_color_hover_dark="#f4e6c2",
        color_accent="#b8862b",
        color_accent_soft="#f4e6c2",
        color_accent_soft_dark="#3a280e",
        checkbox_background_color_selected=GOLD,
        checkbox_background_color_selected_dark="#d4a437",
    )


CSS = f"""
h1, h2, h3, .wk-header h1, #compendium-entry h1, #compendium-entry h2 {{
  font-family: {", ".join(f'"{f}"' if " " in f else f for f in SERIF)};
  letter-spacing: 0.04em;
}}
.wk-header {{ display: flex; align-items: center; gap: 0.8rem; padding: 0.4rem 0 0.2rem; }}
.wk-header svg {{ width: 52px; height: 52px; display: block; }}
.wk-header h1 {{ margin: 0; font-size: 1.7rem; color: var(--body-text-color); }}
.wk-header p {{ margin: 0.1rem 0 0; color: var(--body-text-color-subdued); }}
.wk-status {{ display: flex; flex-wrap: wrap; gap: 0.4rem 1rem; font-size: 0.86rem; }}
.wk-status .item {{ min-width: 12rem; flex: 1 1 14rem; }}
.wk-status .fix {{ display: block; color: var(--body-text-color-subdued); font-size: 0.8rem; }}
.wk-status progress {{ width: 8rem; vertical-align: middle; accent-color: {GOLD}; }}
a.cite {{ color: #5a3d0f !important; font-weight: 600; text-decoration: none; cursor: pointer; }}
.dark a.cite {{ color: #f0cf7a !important; }}
a.cite:hover, a.cite:focus {{ text-decoration: underline; }}
#cite-pop {{
  position: absolute; z-index: 1000; max-width: min(28rem, 92vw); padding: 0.7rem 0.9rem;
  background: var(--background-fill-primary); color: var(--body-text-color);
  border: 1px solid var(--color-accent); border-radius: 6px; box-shadow: 0 6px 24px rgba(0, 0, 0, 0.25);
  font-size: 0.9rem; line-height: 1.5;
}}
#cite-pop sub {{ color: var(--body-text-color-subdued); }}
.w-src {{ margin: 0.3rem 0 0.6rem; }}
.w-src.flash {{ outline: 2px solid var(--color-accent); border-radius: 4px; }}
@media (max-width: 480px) {{
  .wk-header h1 {{ font-size: 1.25rem; }}
  .wk-header svg {{ width: 40px; height: 40px; }}
  .gradio-container {{ padding: 0 6px !important; }}
  .gradio-container .row, .gradio-container .form {{ flex-wrap: wrap !important; }}
  .gradio-container .row > * {{ min-width: 100% !important; }}
  #chatbot {{ height: 60vh !important; }}
}}
"""

_MIC_JS = """
  // Echo cancellation, noise suppression and gain control on every microphone the page opens, so that
  // Wukong's own voice does not cut him off in hands-free mode (see docs/voice.md).
  const devices = navigator.mediaDevices;
  if (devices && devices.getUserMedia) {
    const open = devices.getUserMedia.bind(devices);
    devices.getUserMedia = async (constraints) => {
      if (constraints && constraints.audio) {
        const audio = constraints.audio === true ? {} : { ...constraints.audio };
        Object.assign(audio, { echoCancellation: true, noiseSuppression: true, autoGainControl: true });
        constraints = { ...constraints, audio };
      }
      const stream = await open(constraints);
      const track = stream.getAudioTracks()[0];
      window.wulewuleMic = track ? track.getSettings() : null;
      return stream;
    };
  }
"""

_CITE_JS = """
  // [n] in an answer opens its passage (title, section, text, file) in place, beside the citation.
  const closePop = () => { const pop = document.getElementById('cite-pop'); if (pop) pop.remove(); };
  document.addEventListener('click', (event) => {
    const link = event.target.closest ? event.target.closest('a.cite') : null;
    if (!link) {
      if (!event.target.closest || !event.target.closest('#cite-pop')) closePop();
      return;
    }
    event.preventDefault();
    closePop();
    const id = (link.getAttribute('href') || '').slice(1);
    const passage = id && document.getElementById(id);
    const pop = document.createElement('div');
    pop.id = 'cite-pop';
    pop.setAttribute('role', 'dialog');
    pop.setAttribute('aria-label', '引用来源 ' + link.textContent);
    if (passage) {
      pop.innerHTML = passage.innerHTML;
    } else {
      // The sources block is folded: the link carries its passage (title, text, file: one per line).
      const [head, ...rest] = (link.getAttribute('title') || '（来源不在此页）').split('\\n');
      const file = rest.length > 1 ? rest.pop() : '';
      const title = document.createElement('b');
      title.textContent = head;
      const text = document.createElement('div');
      text.textContent = rest.join(' ');
      const where = document.createElement('sub');
      where.textContent = file;
      pop.append(title, text, where);
    }
    document.body.appendChild(pop);
    const box = link.getBoundingClientRect();
    const right = window.scrollX + document.documentElement.clientWidth - pop.offsetWidth - 8;
    const left = Math.max(8, Math.min(box.left + window.scrollX, right));
    pop.style.left = left + 'px';
    pop.style.top = (box.bottom + window.scrollY + 6) + 'px';
    if (passage) { passage.classList.add('flash'); setTimeout(() => passage.classList.remove('flash'), 2000); }
  });
"""

_KEYS_JS = """
  // Esc stops whatever runs (an answer, the voice, a picture), as the stop button does; it also closes a
  // citation. Enter sends and Shift+Enter starts a new line in the question box (Gradio's own behaviour).
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    const pop = document.getElementById('cite-pop');
    if (pop) { pop.remove(); return; }
    const stop = document.querySelector('#stop');
    if (stop) stop.click();
  });
"""

_BUSY_JS = """
  // The stop button shows only while something runs. An answer, spoken or typed, a hands-free turn and
  // a picture all write the whole-reply file (#voice-file), so its progress overlay is up exactly while a
  // turn is queued or running (Gradio hides it when the turn ends, fails or is cancelled); after that the
  // voice may still be playing in this tab. Esc presses the button either way.
  const voicePlaying = () => [...document.querySelectorAll('#voice audio, #voice-file audio')].some(
    (a) => !a.paused && !a.ended && a.readyState >= 2);  // an autoplay player with nothing loaded is not playing
  const busyNow = () => Boolean(document.querySelector('#voice-file .wrap:not(.hide)')) || voicePlaying();
  // Set on the button itself (Gradio scopes the app's CSS to its container, so a body class would not
  // reach it); it keeps its place, so 清空对话 does not jump.
  const showBusy = () => {
    const stop = document.querySelector('#stop');
    const want = busyNow() ? 'visible' : 'hidden';
    if (stop && stop.style.visibility !== want) stop.style.visibility = want;
  };
  let busyQueued = false;
  const busyLater = () => {
    if (!busyQueued) { busyQueued = true; requestAnimationFrame(() => { busyQueued = false; showBusy(); }); }
  };
  new MutationObserver(busyLater).observe(document.documentElement, {
    subtree: true, childList: true, attributes: true, attributeFilter: ['class'] });
  ['play', 'playing', 'pause', 'ended', 'emptied'].forEach((name) => document.addEventListener(name, busyLater, true));
"""

_A11Y_JS = """
  // Gradio 6's own markup, put right for screen readers (checked by axe-core in tests/browser): the
  // arrow inside a folding chat block is decoration (the block's title is the control), and an empty
  // component's "Empty value" placeholder needs a role for its label.
  const mend = () => {
    document.querySelectorAll('.title[role=button] .arrow button').forEach((b) => {
      const icon = document.createElement('span');
      icon.className = b.className;
      icon.setAttribute('aria-hidden', 'true');
      icon.innerHTML = b.innerHTML;
      b.replaceWith(icon);
    });
    document.querySelectorAll('.empty[aria-label]:not([role])').forEach((e) => e.setAttribute('role', 'img'));
  };
  let queued = false;
  new MutationObserver(() => {
    if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; mend(); }); }
  }).observe(document.documentElement, { childList: true, subtree: true });
"""

HEAD = "<script>\n(() => {" + _MIC_JS + _CITE_JS + _KEYS_JS + _BUSY_JS + _A11Y_JS + "})();\n</script>"


def header_html(title: str, promise: str) -> str:
    """The page's header: Wukong's avatar, the name and a one-line promise."""
    return (
        '<div class="wk-header">'
        f'<span aria-hidden="true">{(ASSETS / "wukong.svg").read_text(encoding="utf-8")}</span>'
        f"<div><h1>{title}</h1><p>{promise}</p></div></div>"
    )
