"""Game and picture words -> English Stable Diffusion phrases (the curated table).

The knowledge base adds every other boss, place and character by its English alias (see
modules/image/prompt.py); entries here win over it and describe what the model cannot know from a
name ("Yellowbrow" means nothing to SD 1.5; "a demon monk with long yellow eyebrows" does).
"""

from __future__ import annotations

DESTINED_ONE = "the Destined One, a monkey warrior in dark armor with a golden headband"

# Who is in the picture.
SUBJECTS: dict[str, str] = {
    "天命人": DESTINED_ONE, "天命猴": DESTINED_ONE, "黑神话悟空": DESTINED_ONE,
    "孙悟空": "Sun Wukong the Monkey King, golden armor, phoenix-feather cap",
    "悟空": "Sun Wukong the Monkey King, golden armor, phoenix-feather cap",
    "齐天大圣": "Sun Wukong the Monkey King, golden armor, phoenix-feather cap",
    "大圣": "Sun Wukong the Monkey King, golden armor, phoenix-feather cap",
    "猴哥": "Sun Wukong the Monkey King, golden armor, phoenix-feather cap",
    "石猴": "a stone monkey", "小猴子": "a little monkey", "猴子": "a monkey", "猴": "a monkey",
    "黑熊精": "Black Bear Guai, a huge black bear demon in a monk's kasaya",
    "红孩儿": "Red Boy, a demon child wreathed in fire, holding a spear",
    "黄眉": "Yellowbrow, a demon monk with long yellow eyebrows",
    "黄眉大王": "Yellowbrow, a demon monk with long yellow eyebrows",
    "虎先锋": "Tiger Vanguard, a tiger demon warrior with twin blades",
    "二郎神": "Erlang Shen, a three-eyed celestial warrior with a three-pointed spear",
    "二郎显圣真君": "Erlang Shen, a three-eyed celestial warrior with a three-pointed spear",
    "杨戬": "Erlang Shen, a three-eyed celestial warrior with a three-pointed spear",
    "黄风大圣": "Yellow Wind Sage, a rat demon sage in golden robes",
    "广智": "Guangzhi, a wolf monk with a flaming twinblade",
    "亢金龙": "Kang-Jin Loong, a golden Chinese dragon",
    "百眼魔君": "Hundred-Eyed Daoist Master, a Daoist covered in eyes",
    "紫蛛儿": "Violet Spider, a spider spirit woman in purple silk",
    "四妹": "a spider spirit girl in purple silk", "四姐": "a spider spirit girl in purple silk",
    "牛魔王": "Bull King, a giant bull demon king in armor",
    "铁扇公主": "Princess Iron Fan, holding a giant palm-leaf fan",
    "猪八戒": "Zhu Bajie, a pig-faced warrior monk with a nine-toothed rake",
    "八戒": "Zhu Bajie, a pig-faced warrior monk with a nine-toothed rake",
    "唐僧": "Tang Sanzang, a Buddhist monk in a red kasaya",
    "沙僧": "Sha Wujing, a monk with a crescent-moon spade",
    "观音": "Guanyin Bodhisattva, serene, white robes, holding a willow branch",
    "观音菩萨": "Guanyin Bodhisattva, serene, white robes, holding a willow branch",
    "白龙马": "a white dragon horse", "小白龙": "a white Chinese dragon",
    "大圣残躯": "the Great Sage's broken shell, a giant stone warrior",
    "土地公": "an old earth god with a white beard and a cane",
}  # fmt: skip

# Where it happens.
SCENES: dict[str, str] = {
    "黑风山": "Black Wind Mountain, misty pine forest, ancient temple",
    "黄风岭": "Yellow Wind Ridge, desert canyon, swirling sandstorm",
    "小西天": "the New West, snow-covered Buddhist temples in the mountains",
    "盘丝岭": "the Webbed Hollow, a cave draped in spider silk",
    "盘丝洞": "the Webbed Hollow, a cave draped in spider silk",
    "火焰山": "the Flaming Mountains, volcanic landscape, lava and fire",
    "花果山": "Mount Huaguo, lush green peaks with waterfalls",
    "水帘洞": "the Water Curtain Cave behind a waterfall",
    "天宫": "a heavenly palace above the clouds", "雪山": "snowy mountains", "雪地": "snowfield, falling snow",
    "雪景": "snowy landscape", "下雪": "snowing", "雪中": "in falling snow", "雪": "snow",
    "竹林": "bamboo forest", "松林": "pine forest", "森林": "forest", "寺庙": "ancient Chinese temple",
    "古寺": "ancient Chinese temple", "寺": "temple", "宝塔": "pagoda", "塔": "pagoda", "悬崖": "cliff edge",
    "山顶": "mountain peak", "山巅": "mountain peak", "云海": "sea of clouds", "瀑布": "waterfall",
    "沙漠": "desert", "沙尘暴": "sandstorm", "长城": "the Great Wall", "樱花树": "cherry blossom tree",
    "樱花": "cherry blossoms", "桃花": "peach blossoms", "荷花": "lotus flowers", "湖": "lake", "河": "river",
    "大海": "the sea", "海边": "seashore", "天空": "sky", "夜晚": "night", "晚上": "night", "夜": "night",
    "月光": "moonlight", "月亮": "full moon", "月下": "under the moon", "夕阳": "sunset", "日落": "sunset",
    "黄昏": "dusk", "日出": "sunrise", "清晨": "morning light", "雨中": "in the rain", "下雨": "rain",
    "雨": "rain", "闪电": "lightning", "雷电": "lightning", "秋天": "autumn leaves", "冬天": "winter",
    "春天": "spring", "全景": "panoramic view", "风景": "landscape", "背景": "background",
    "山": "mountains", "云": "clouds", "火": "fire", "火海": "sea of fire", "废墟": "ruins", "洞穴": "cave",
}  # fmt: skip

# What they hold, do, wear; how the picture is framed.
DETAILS: dict[str, str] = {
    "如意金箍棒": "the golden-banded staff", "金箍棒": "the golden-banded staff", "长棍": "a long staff",
    "铁棍": "an iron staff", "棍子": "a staff", "棍": "a staff", "葫芦": "a gourd", "筋斗云": "a golden cloud",
    "袈裟": "kasaya robe", "金箍": "golden headband", "大圣套": "the Great Sage's golden armor",
    "火刃": "a flaming blade", "三昧真火": "samadhi fire", "芭蕉扇": "a giant palm-leaf fan", "火把": "torches",
    "打坐": "meditating, sitting cross-legged", "冥想": "meditating", "喝酒": "drinking wine", "喷火": "breathing fire",
    "大战": "fighting", "对战": "fighting", "战斗": "in battle, dynamic pose", "打架": "fighting", "对峙": "facing off",
    "对视": "staring at each other", "拿着": "holding", "手持": "holding", "握着": "holding", "扛着": "carrying",
    "背着": "carrying on the back", "骑着": "riding", "骑": "riding", "站在": "standing on", "坐在": "sitting on",
    "走在": "walking in", "独行": "walking alone", "飞": "flying", "跳": "leaping", "笑": "laughing",
    "背影": "seen from behind", "全身像": "full body", "全身": "full body", "正面": "front view", "侧面": "side view",
    "半身": "upper body", "特写": "close-up", "帅": "heroic", "帅气": "heroic", "可爱": "cute", "霸气": "imposing",
    "威风": "imposing", "酷": "cool", "史诗": "epic", "红色": "red", "金色": "golden", "黑色": "black",
    "白色": "white", "紫色": "purple", "高清": "ultra detailed, 8k", "4k": "ultra detailed, 4k",
}  # fmt: skip

# How it is painted. These go after the content, before the quality tags.
STYLES: dict[str, str] = {
    "水墨画": "traditional Chinese ink wash painting, sumi-e",
    "水墨风": "traditional Chinese ink wash painting, sumi-e",
    "水墨": "traditional Chinese ink wash painting, sumi-e", "国风": "Chinese traditional art style, guofeng",
    "国画": "traditional Chinese painting", "工笔画": "gongbi fine-line Chinese painting",
    "工笔": "gongbi fine-line Chinese painting", "赛博朋克": "cyberpunk, neon lights", "像素风": "pixel art",
    "像素": "pixel art", "q版": "chibi, cute", "二次元": "anime style", "动漫": "anime style", "油画": "oil painting",
    "水彩": "watercolor painting", "浮世绘": "ukiyo-e woodblock print", "写实": "photorealistic",
    "剪纸": "Chinese paper-cut art", "素描": "pencil sketch", "手绘": "hand-drawn illustration", "3d": "3d render",
    "黑神话风格": "in the style of Black Myth: Wukong, dark fantasy", "黑神话": "Black Myth: Wukong",
    "壁纸": "wallpaper, wide shot", "手机壁纸": "phone wallpaper, vertical composition", "头像": "portrait, avatar",
    "海报": "movie poster", "表情包": "sticker, expressive face, simple background",
    "立绘": "full body character art, standing pose, simple background", "插画": "illustration",
    "画像": "portrait", "风景画": "landscape painting",
}  # fmt: skip

# Words that only carry the request ("帮我画一张…的图"): dropped from the prompt.
FILLERS: tuple[str, ...] = (
    "帮我", "给我", "替我", "为我", "帮忙", "麻烦", "请你", "请", "你", "我", "能不能", "可不可以", "可以", "能否",
    "能", "想要", "我要", "要", "想看", "求", "老铁", "老师", "再", "来", "整", "弄", "搞", "做", "生成", "出", "绘制",
    "描绘",
    "画出来", "画出", "画下", "画成", "画画", "画", "一下", "一张", "一幅", "一个", "一只", "一位", "张", "幅", "个",
    "只", "位", "图片", "图像", "图", "照片", "的", "在", "和", "与", "跟", "了", "着", "吧", "呗", "吗", "呢", "啊",
    "呀", "哦", "看看", "看", "出来", "风格", "样子", "场景", "画面", "内容是", "内容", "主题是", "主题", "这次",
    "换成", "一点", "有", "是", "把", "里", "上", "中", "之", "好", "谢谢", "参考", "不要", "要求", "新", "那种",
)  # fmt: skip

# Everyday words players add ("画一只猫"), so a request outside the game still gets its subject.
GENERAL: dict[str, str] = {
    "猫": "a cat", "狗": "a dog", "老虎": "a tiger", "虎": "a tiger", "狼": "a wolf", "龙": "a Chinese dragon",
    "马": "a horse", "鹤": "a crane", "蛇": "a snake", "熊": "a bear", "鸟": "a bird", "凤凰": "a phoenix",
    "蜘蛛": "a spider", "狐狸": "a fox", "鱼": "a fish", "花": "flowers", "树": "a tree", "石头": "rocks",
    "城市": "a city", "村庄": "a village", "桥": "a bridge", "船": "a boat", "灯笼": "lanterns", "剑": "a sword",
    "刀": "a blade", "枪": "a spear", "弓": "a bow", "和尚": "a monk", "道士": "a Taoist priest", "女孩": "a girl",
    "男孩": "a boy", "老人": "an old man", "神仙": "an immortal", "妖怪": "a yaoguai demon", "英雄": "a hero",
    "武士": "a warrior", "将军": "a general", "皮肤": "outfit", "盔甲": "armor", "战甲": "armor", "酒": "wine",
}  # fmt: skip

# English words and names in English requests that SD needs spelled out.
ENGLISH: dict[str, str] = {
    "the destined one": DESTINED_ONE, "destined one": DESTINED_ONE,
    "ink wash style": "traditional Chinese ink wash painting, sumi-e",
    "ink wash": "traditional Chinese ink wash painting",
    "ink style": "traditional Chinese ink wash painting", "chibi": "chibi, cute",
    "yellowbrow": "Yellowbrow, a demon monk with long yellow eyebrows",
    "black bear guai": "Black Bear Guai, a huge black bear demon in a monk's kasaya",
    "red boy": "Red Boy, a demon child wreathed in fire",
    "tiger vanguard": "Tiger Vanguard, a tiger demon warrior with twin blades",
    "erlang shen": "Erlang Shen, a three-eyed celestial warrior with a three-pointed spear",
    "yellow wind sage": "Yellow Wind Sage, a rat demon sage in golden robes",
    "zhu bajie": "Zhu Bajie, a pig-faced warrior monk with a nine-toothed rake",
}  # fmt: skip

# Whether a phrase starts an action that the next phrase completes ("holding" + "a staff").
JOINS_NEXT: frozenset[str] = frozenset(
    {"holding", "riding", "standing on", "sitting on", "walking in", "carrying", "carrying on the back", "fighting"}
)

QUALITY = {
    "sd15": "masterpiece, best quality, highly detailed",
    "sdxl": "highly detailed, sharp focus, cinematic lighting",
}
# Without a style named, pictures lean to the game's own look.
DEFAULT_STYLE = "Chinese mythology, dark fantasy, cinematic lighting"
