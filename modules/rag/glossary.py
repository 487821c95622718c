"""English game words -> the Chinese words the knowledge base uses, for English questions.

The knowledge base is written in Chinese with an English summary per entry; this short glossary
lets "how do I beat…", "which spell…" or "where is the shrine" reach the Chinese passages too.
Entity names are not here: they come from each entry's aliases.
"""

from __future__ import annotations

import re

GLOSSARY: dict[str, str] = {
    "beat": "打法", "defeat": "击败 打法", "fight": "战斗 打法", "boss": "头目 妖王", "bosses": "头目 妖王",
    "weakness": "弱点", "tips": "打法 技巧", "strategy": "打法", "dodge": "闪避 闪身", "parry": "识破",
    "where": "位置 位于", "location": "位置", "find": "位置 获得", "get": "获得 得到", "obtain": "获得",
    "unlock": "解锁 获得", "learn": "学会 获得", "drop": "掉落", "drops": "掉落", "reward": "奖励",
    "rewards": "奖励", "die": "死亡", "death": "死亡", "dying": "死亡", "lose": "丢失 损失",
    "spell": "法术", "spells": "法术", "transformation": "变化", "transformations": "变化",
    "transform": "变化", "spirit": "精魄", "spirits": "精魄", "vessel": "法宝", "vessels": "法宝",
    "gourd": "葫芦", "drink": "酒", "wine": "酒", "soak": "泡酒物", "curio": "珍玩", "curios": "珍玩",
    "armor": "披挂 套装", "armour": "披挂 套装", "set": "套装", "staff": "棍 武器", "weapon": "武器 兵器",
    "weapons": "武器 兵器", "stance": "棍法", "stances": "棍法", "shrine": "土地庙", "shrines": "土地庙",
    "focus": "棍势", "stamina": "气力", "mana": "法力", "health": "血量 生命", "heal": "回复 葫芦",
    "sparks": "灵光点", "talent": "灵光点 天赋", "talents": "灵光点 天赋", "experience": "经验",
    "xp": "经验", "level": "等级", "currency": "灵蕴", "ending": "结局", "endings": "结局",
    "secret": "隐藏", "hidden": "隐藏", "true": "隐藏", "chapter": "回 章", "chapters": "回",
    "area": "区域", "areas": "区域", "map": "地图", "region": "区域", "novel": "西游记 原著",
    "original": "原著", "story": "故事 剧情", "plot": "剧情", "lore": "剧情 设定", "father": "父亲",
    "mother": "母亲", "wife": "妻子", "son": "儿子", "daughter": "女儿", "brother": "兄弟 弟弟",
    "sister": "姐妹", "master": "师父", "disciple": "弟子", "developer": "开发", "developed": "开发",
    "studio": "游戏科学", "release": "发售", "released": "发售", "price": "价格", "sales": "销量",
    "sold": "销量 售出", "copies": "份 套", "award": "奖", "awards": "获奖", "won": "获得 奖",
    "engine": "引擎", "platform": "平台", "platforms": "平台", "music": "音乐 配乐", "song": "歌曲",
    "soundtrack": "配乐", "voice": "配音", "actor": "配音 演员", "animation": "动画", "meme": "梗",
    "memes": "梗", "easter": "彩蛋", "temple": "寺 庙", "temples": "寺 庙", "statue": "塑像 彩塑",
    "shanxi": "山西", "real": "真实 取景", "filmed": "取景 扫描", "scanned": "扫描",
    "difficulty": "难度", "hard": "难", "difficult": "难", "new game plus": "二周目",
    "ng+": "二周目", "achievement": "成就", "achievements": "成就", "monkey": "猴", "headband": "金箍",
    "relic": "根器 六根", "relics": "根器 六根", "roots": "六根", "sense": "六根", "senses": "六根",
}  # fmt: skip

# Players' words -> the knowledge base's words (Chinese). Appended to a question, never replacing it.
COLLOQUIAL: dict[str, str] = {
    "boss": "头目 妖王", "老婆": "妻子", "媳妇": "妻子", "老公": "丈夫", "爸爸": "父亲", "老爸": "父亲",
    "爹": "父亲", "妈妈": "母亲", "老妈": "母亲", "娘": "母亲", "儿子": "儿子 之子", "闺女": "女儿",
    "师傅": "师父", "蓝": "法力", "回蓝": "法力 恢复", "回血": "恢复 葫芦", "血量": "生命", "掉啥": "掉落",
    "爆什么": "掉落", "爆啥": "掉落", "技能": "法术 技能", "大招": "法术", "图鉴": "影神图", "宝贝": "法宝",
    "武器": "武器 兵器", "棍子": "棍", "衣服": "披挂", "装备": "披挂 装备", "套装": "套装 披挂",
    "复活": "土地庙", "存档": "土地庙", "存档点": "土地庙", "篝火": "土地庙", "关卡": "回", "章节": "回",
    "第一章": "第一回", "第二章": "第二回", "第三章": "第三回", "第四章": "第四回", "第五章": "第五回",
    "第六章": "第六回", "真结局": "隐藏结局", "好结局": "隐藏结局", "结局": "结局", "卡关": "难 打法",
    "打不过": "打法", "难打": "打法", "咋打": "打法", "怎么打": "打法", "怎么过": "打法", "逃课": "打法 技巧",
    "哪学": "获得 学会", "哪拿": "获得", "哪弄": "获得", "哪里拿": "获得", "原型": "原型 取材 取景",
    "原形": "原形 原身 真身", "本体": "原身 真身", "来头": "来历 身份", "啥来头": "来历 身份",
    "多少钱": "价格", "卖了": "销量", "卖了多少": "销量", "配音": "配音 声优", "bgm": "配乐 音乐",
    "歌": "歌曲 配乐", "主题曲": "歌曲 配乐", "取景": "取景 扫描", "现实": "取景 真实", "彩蛋": "彩蛋",
    "梗": "梗", "小说": "西游记 原著", "电视剧": "86版西游记", "猴哥": "孙悟空", "大圣": "孙悟空 大圣",
    "猴子": "天命人 猴", "八戒": "猪八戒", "沙师弟": "沙僧", "唐长老": "唐僧", "二郎": "二郎显圣真君",
    "杨戬": "二郎显圣真君", "观音": "观音菩萨", "弥勒": "弥勒佛", "老君": "太上老君", "如来": "如来佛祖",
}  # fmt: skip

_PATTERN = re.compile(
    "|".join(rf"(?<![\w+]){re.escape(k)}(?![\w+])" for k in sorted(GLOSSARY, key=len, reverse=True)),
    re.IGNORECASE,
)


_COLLOQUIAL_PATTERN = re.compile("|".join(re.escape(k) for k in sorted(COLLOQUIAL, key=len, reverse=True)), re.I)


def _terms(pattern: re.Pattern[str], table: dict[str, str], text: str) -> list[str]:
    out: list[str] = []
    for match in pattern.finditer(text):
        for term in table[match.group(0).lower()].split():
            if term not in out:
                out.append(term)
    return out


def kb_terms(text: str) -> list[str]:
    """The knowledge base's words for the players' words in a (Chinese) question, each once."""
    return _terms(_COLLOQUIAL_PATTERN, COLLOQUIAL, text)


def chinese_terms(text: str) -> list[str]:
    """Chinese equivalents of the English game words in a text, each once, in order."""
    return _terms(_PATTERN, GLOSSARY, text)
