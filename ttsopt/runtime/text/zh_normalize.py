"""Chinese text normalisation exactly as upstream GPT-SoVITS reads it, for Mandarin (v1 and v2) and Cantonese.

Upstream (GPT-SoVITS @48b1a01) runs PaddleSpeech's ``TextNormalizer`` (``GPT_SoVITS/text/zh_normalization``) in
``chinese.py``, ``chinese2.py`` and ``cantonese.py`` alike; only what follows it (the punctuation table, 嗯/呣,
collapsing repeated marks) differs per language and lives in :mod:`.zh` and :mod:`.yue`. This module is
ttsopt's own implementation of the same behaviour, quirks included, because the models were trained on
what that normaliser writes (checked against upstream's own output on ``tests/text/zh_normalize_expected.json``):

* spaces and the marks ``—《》【】<>{}()（）#&@“”^_|\\`` are removed, then the text is cut into sentences after
  ``：、，；。？！,;?!`` (and a closing quote) and at newlines, and each sentence is read on its own;
* per sentence, in this order: traditional → simplified, full-width letters and digits → ASCII; dates
  (``2026年12月6日``, ``2026-12-06``, ``2026/12/06``, ``2026.12.06``); times and time ranges (``10:30`` → 十点半;
  in a range the second minute reads 半 when the *first* is 30, as upstream does); ``~`` between two numbers
  with units → 至; temperatures (``-3°C`` → 零下三度; 摄氏度 too becomes 度); units (cm, km, kg, m, s, … replaced *anywhere* in the
  sentence, letters of English words included: "am" → "a米"); arithmetic ``a+b``, ``a-b``, ``a×b``, ``a÷b``,
  ``a=b`` → 加减乘除等于 (so "2-3小时" is 二减三小时, not a range); powers (x² → x的二次方); fractions; percentages;
  mobile, landline and 400 numbers digit by digit (一 → 幺); number ranges with ``~`` → 到; negative integers;
  version numbers (1.2.3); decimals; a number before a measure word (2个 → 两个, also 第2名 → 第两名); any
  other run of three or more digits digit by digit (100 → 幺零零, "1,000" → 一,零零零); the remaining numbers
  as cardinals; then ``/`` → 每, ①–⑩, Greek letters, ``+ - × ÷ =`` → 加减乘除等, and a last mark filter.

Currency signs are not read: ``$`` becomes a "." pause (the punctuation table), ``€ £ ¥`` are dropped, and
``￥`` turns every pause of a Mandarin segment into ``SP2`` (upstream's ``clean_special``, in :mod:`.zh`).
"""

from __future__ import annotations

import ast
import re
from functools import cache

from ttsopt.runtime.text.data import data_file

DIGITS = "零一二三四五六七八九"
#: Decimal powers that have a name, largest first: a number is cut at the largest power shorter than it.
POWERS = ((8, "亿"), (4, "万"), (3, "千"), (2, "百"), (1, "十"))
SUPERSCRIPTS = {"⁰": "0", "¹": "1", "²": "2", "³": "3", "⁴": "4", "⁵": "5", "⁶": "6", "⁷": "7", "⁸": "8", "⁹": "9",
                "ˣ": "x", "ʸ": "y", "ⁿ": "n"}
OPERATORS = {"+": "加", "-": "减", "×": "乘", "÷": "除", "=": "等于"}
#: Units replaced wherever they occur, in this order (so "mm" is never seen: "m" has already become 米).
UNIT_WORDS = (("cm2", "平方厘米"), ("cm²", "平方厘米"), ("cm3", "立方厘米"), ("cm³", "立方厘米"), ("cm", "厘米"),
              ("db", "分贝"), ("ds", "毫秒"), ("kg", "千克"), ("km", "千米"), ("m2", "平方米"), ("m²", "平方米"),
              ("m³", "立方米"), ("m3", "立方米"), ("ml", "毫升"), ("m", "米"), ("mm", "毫米"), ("s", "秒"))
#: The units a ``~`` range may carry on both sides to be read with 至, tried in this order.
RANGE_UNITS = ("%", "°C", "℃", "度", "摄氏度", "cm2", "cm²", "cm3", "cm³", "cm", "db", "ds", "kg", "km", "m2", "m²",
               "m³", "m3", "ml", "m", "mm", "s")
#: Measure words after which a number is a count (2 → 两): classifiers, containers, weights and lengths, time
#: and money units.
MEASURE_WORDS = (
    "处 台 架 枚 趟 幅 平 方 堵 间 床 株 批 项 例 列 篇 栋 注 亩 封 艘 把 目 套 段 人 所 朵 匹 张 座 回 场 尾 条 个 首 阙 阵 网 炮 顶 "
    "丘 棵 只 支 袭 辆 挑 担 颗 壳 窠 曲 墙 群 腔 砣 客 贯 扎 捆 刀 令 打 手 罗 坡 山 岭 江 溪 钟 队 单 双 对 出 口 头 脚 板 跳 枝 件 "
    "贴 针 线 管 名 位 身 堂 课 本 页 家 户 层 丸 泡 粒 幢 堆 根 道 面 片 块 "
    "盘 碗 碟 叠 桶 笼 盆 盒 杯 斛 锅 簋 篮 罐 瓶 壶 卮 盏 箩 箱 煲 啖 袋 钵 撮 勺 合 升 斗 "
    "丝 毫 厘 分 钱 两 斤 铢 石 钧 锱 忽 千克 毫克 微克 公分 寸 尺 丈 里 寻 常 铺 程 千米 分米 厘米 毫米 微米 米 吨 十吨 "
    "年 月 日 季 刻 时 周 天 秒 小时 旬 纪 岁 世 更 夜 春 夏 秋 冬 代 伏 辈 "
    "元 美元 角 毛 万 千 百 亿 千万 百万"
).split()
GREEK = {"α": "阿尔法", "β": "贝塔", "γ": "伽玛", "Γ": "伽玛", "δ": "德尔塔", "Δ": "德尔塔", "ε": "艾普西龙", "ζ": "捷塔",
         "η": "依塔", "θ": "西塔", "Θ": "西塔", "ι": "艾欧塔", "κ": "喀帕", "λ": "拉姆达", "Λ": "拉姆达", "μ": "缪", "ν": "拗",
         "ξ": "克西", "Ξ": "克西", "ο": "欧米克伦", "π": "派", "Π": "派", "ρ": "肉", "ς": "西格玛", "Σ": "西格玛",
         "σ": "西格玛", "τ": "套", "υ": "宇普西龙", "φ": "服艾", "Φ": "服艾", "χ": "器", "ψ": "普赛", "Ψ": "普赛",
         "ω": "欧米伽", "Ω": "欧米伽"}
#: The last replacements of a sentence, in order: ``/`` (left by fractions and dates) → 每, circled numbers, Greek,
#: and the arithmetic signs left outside a formula (a lone ``=`` is 等 here, 等于 inside one).
LAST_WORDS = {"/": "每", **{chr(0x2460 + i): w for i, w in enumerate("一二三四五六七八九十")}, **GREEK,
              "+": "加", "-": "减", "×": "乘", "÷": "除", "=": "等"}

_REMOVED_FIRST = re.compile(r"[—《》【】<>{}()（）#&@“”^_|\\]")
_REMOVED_LAST = re.compile(r"[-—《》【】<=>{}()（）#&@“”^_|\\]")
_SENTENCE_END = re.compile(r"([：、，；。？！,;?!][”’]?)")
#: Full-width letters and digits → ASCII. (Upstream's table for the ideographic space is keyed by a string, which
#: ``str.translate`` never looks up: U+3000 stays, and the punctuation filter drops it later.)
_FULL_WIDTH = {ord(c) + 0xFEE0: ord(c) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"}

_SUP = "".join(SUPERSCRIPTS)
_NUM = r"\d+(?:\.\d+)?"  # an unsigned integer or decimal
_CLOCK = r"([01]?[0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9]))?"
_DATE = re.compile(r"(\d{4}|\d{2})年(?:(0?[1-9]|1[0-2])月)?(?:(0?[1-9]|[12][0-9]|30|31)([日号]))?")
_DASHED_DATE = re.compile(r"(\d{4})([- /.])(0[1-9]|1[012])\2(0[1-9]|[12][0-9]|3[01])")
_TIME_RANGE = re.compile(_CLOCK + "[~-]" + _CLOCK)
_TIME = re.compile(_CLOCK)
_UNIT_ALTERNATIVES = "|".join(re.escape(u) for u in RANGE_UNITS)
_UNIT_RANGE = re.compile(rf"(?:-?{_NUM}|\.\d+)(?:{_UNIT_ALTERNATIVES})~(?:-?{_NUM}|\.\d+)(?:{_UNIT_ALTERNATIVES})")
_TEMPERATURE = re.compile(rf"(-?)({_NUM})(°C|℃|度|摄氏度)")
_OPERAND = rf"(?:-?{_NUM}[{_SUP}]*|\.\d+[{_SUP}]*|[A-Za-z][{_SUP}]*)"
_ARITHMETIC = re.compile(rf"({_OPERAND})([-+×÷=])({_OPERAND})")
_POWER = re.compile(f"[{_SUP}]+")
_FRACTION = re.compile(r"(-?)(\d+)/(\d+)")
_PERCENT = re.compile(rf"(-?)({_NUM})%")
_MOBILE = re.compile(r"(?<!\d)(?:\+?86 ?)?1(?:[38]\d|5[0-35-9]|7[678]|9[89])\d{8}(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(?:0(?:10|2[1-3]|[3-9]\d{2})-?)?[1-9]\d{6,7}(?!\d)")
_SERVICE_NUMBER = re.compile(r"400-?\d{3}-?\d{4}")
_NOT_BESIDE_RANGE = r"\d+\-×÷="
_RANGE = re.compile(rf"(?<![{_NOT_BESIDE_RANGE}])(-?{_NUM})[-~](-?{_NUM})(?![{_NOT_BESIDE_RANGE}])")
_NEGATIVE = re.compile(r"-(\d+)")
_VERSION = re.compile(r"\d+(?:\.\d+){2,}")
_DECIMAL = re.compile(r"(-?)(\d+\.\d+)|\.(\d+)")
_COUNT = re.compile(r"(\d+)([多余几+])?(" + "|".join(sorted(MEASURE_WORDS, key=len, reverse=True)) + ")")
_DIGIT_STRING = re.compile(r"\d{3,}")
_NUMBER = re.compile(rf"(-?)({_NUM})|\.(\d+)")


@cache
def _simplified() -> dict[int, str]:
    """Traditional → simplified, the official character table (two aligned string literals, read as data)."""
    tree = ast.parse(data_file("zh_normalization/char_convert.py").read_text(encoding="utf-8"))
    strings = {t.id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
               for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
    simplified, traditional = strings["simplified_charcters"], strings["traditional_characters"]
    return {ord(t): s for t, s in zip(traditional, simplified, strict=False)}


def to_simplified(text: str) -> str:
    """Traditional characters → simplified, character by character (the official ``tranditional_to_simplified``)."""
    return text.translate(_simplified())


# ---- reading numbers ---------------------------------------------------------------------------------------------

def read_digits(digits: str, yao: bool = False) -> str:
    """Digit by digit ("2024" → 二零二四); ``yao``: 1 as 幺, as in phone numbers and codes."""
    spoken = "".join(DIGITS[int(d)] for d in digits)
    return spoken.replace("一", "幺") if yao else spoken


def _cardinal_words(digits: str) -> list[str]:
    """The words of a digit string that may start with zeros: cut at the largest named power below its length,
    each side read the same way; a side that is one digit after zeros reads 零 first (10105 → 一万零一百零五)."""
    significant = digits.lstrip("0")
    if not significant:
        return []
    if len(significant) == 1:
        return (["零"] if len(significant) < len(digits) else []) + [DIGITS[int(significant)]]
    power, name = next((p, n) for p, n in POWERS if p < len(significant))
    return _cardinal_words(digits[:-power]) + [name] + _cardinal_words(digits[-power:])


def cardinal(digits: str) -> str:
    """An integer as a cardinal ("15" → 十五, "0" → 零, "" → ""); a leading 一十 is said 十."""
    if not digits:
        return ""
    words = _cardinal_words(digits.lstrip("0")) or ["零"]
    return "".join(words[1:] if words[:2] == ["一", "十"] else words)


def number(text: str) -> str:
    """An unsigned integer or decimal: the cardinal, then 点 and the decimals digit by digit, trailing zeros
    said once ("5.50" → 五点五零, "3.000" → 三点零, ".5" → 零点五)."""
    whole, _, decimals = text.partition(".")
    spoken = cardinal(whole)
    if decimals.endswith("0"):
        decimals = decimals.rstrip("0") + "0"
    return (spoken or "零") + "点" + read_digits(decimals) if decimals else spoken


def _signed(sign: str, digits: str) -> str:
    return ("负" if sign else "") + number(digits)


def _clock_part(digits: str) -> str:
    """Minutes and seconds: a leading zero is said (05 → 零五)."""
    return ("零" if digits.startswith("0") else "") + number(digits.lstrip("0"))


def _clock(hour: str, minute: str, second: str | None, half: bool) -> str:
    spoken = number(hour) + "点"
    if minute.lstrip("0"):
        spoken += "半" if half else _clock_part(minute) + "分"
    if second and second.lstrip("0"):
        spoken += _clock_part(second) + "秒"
    return spoken


# ---- the rules, one per kind of expression, in upstream's order --------------------------------------------------

def _date(m: re.Match) -> str:
    year, month, day, day_word = m.groups()
    return (read_digits(year) + "年" + (cardinal(month) + "月" if month else "")
            + (cardinal(day) + day_word if day else ""))


def _dashed_date(m: re.Match) -> str:
    year, _, month, day = m.groups()
    return f"{read_digits(year)}年{cardinal(month)}月{cardinal(day)}日"


def _time_range(m: re.Match) -> str:
    """"8:30-12:15" → 八点半至十二点半: upstream says 半 for the end whenever the start's minute is 30."""
    h1, m1, s1, h2, m2, s2 = m.groups()
    half = int(m1) == 30
    return _clock(h1, m1, s1, half) + "至" + _clock(h2, m2, s2, half)


def _time(m: re.Match) -> str:
    hour, minute, second = m.groups()
    return _clock(hour, minute, second, int(minute) == 30)


def _temperature(m: re.Match) -> str:
    """Always 度, 摄氏度 included: upstream compares the wrong group with "摄氏度", so it never keeps it."""
    sign, value, _ = m.groups()
    return ("零下" if sign else "") + number(value) + "度"


def _units(sentence: str) -> str:
    for unit, word in UNIT_WORDS:
        sentence = sentence.replace(unit, word)
    return sentence


def _arithmetic(m: re.Match) -> str:
    return m.group(1) + OPERATORS[m.group(2)] + m.group(3)


def _power(m: re.Match) -> str:
    return "的" + "".join(SUPERSCRIPTS[c] for c in m.group()) + "次方"


def _fraction(m: re.Match) -> str:
    sign, numerator, denominator = m.groups()
    return ("负" if sign else "") + number(denominator) + "分之" + number(numerator)


def _percent(m: re.Match) -> str:
    return ("负" if m.group(1) else "") + "百分之" + number(m.group(2))


def _mobile(m: re.Match) -> str:
    """Digit by digit; a space left after the country code (from a full-width one) becomes a pause."""
    return "，".join(read_digits(part, yao=True) for part in m.group().strip("+").split())


def _phone(m: re.Match) -> str:
    """Digit by digit, a pause at each dash (010-12345678 → 零幺零，幺二三四五六七八)."""
    return "，".join(read_digits(part, yao=True) for part in m.group().split("-"))


def _signed_number(text: str) -> str:
    return _signed(text[0] == "-", text.lstrip("-"))


def _range(m: re.Match) -> str:
    return _signed_number(m.group(1)) + "到" + _signed_number(m.group(2))


def _version(m: re.Match) -> str:
    return "".join("点" if c == "." else DIGITS[int(c)] for c in m.group())


def _decimal(m: re.Match) -> str:
    sign, value, fraction = m.groups()
    return number("." + fraction) if fraction is not None else _signed(sign, value)


def _count(m: re.Match) -> str:
    digits, approx, measure = m.groups()
    spoken = number(digits)
    return ("两" if spoken == "二" else spoken) + ("多" if approx == "+" else approx or "") + measure


def _last_words(sentence: str) -> str:
    for sign, word in LAST_WORDS.items():
        sentence = sentence.replace(sign, word)
    return _REMOVED_LAST.sub("", sentence)


def verbalise(sentence: str) -> str:
    """One sentence with every number, date, time, unit and sign read out (upstream's ``normalize_sentence``)."""
    sentence = to_simplified(sentence).translate(_FULL_WIDTH)
    sentence = _DATE.sub(_date, sentence)
    sentence = _DASHED_DATE.sub(_dashed_date, sentence)
    sentence = _TIME_RANGE.sub(_time_range, sentence)
    sentence = _TIME.sub(_time, sentence)
    sentence = _UNIT_RANGE.sub(lambda m: m.group().replace("~", "至"), sentence)
    sentence = _TEMPERATURE.sub(_temperature, sentence)
    sentence = _units(sentence)
    while _ARITHMETIC.search(sentence):  # "1+2+3": each pass reads the operators it can reach
        sentence = _ARITHMETIC.sub(_arithmetic, sentence)
    sentence = _POWER.sub(_power, sentence)
    sentence = _FRACTION.sub(_fraction, sentence)
    sentence = _PERCENT.sub(_percent, sentence)
    sentence = _MOBILE.sub(_mobile, sentence)
    sentence = _LANDLINE.sub(_phone, sentence)
    sentence = _SERVICE_NUMBER.sub(_phone, sentence)
    sentence = _RANGE.sub(_range, sentence)
    sentence = _NEGATIVE.sub(lambda m: "负" + number(m.group(1)), sentence)
    sentence = _VERSION.sub(_version, sentence)
    sentence = _DECIMAL.sub(_decimal, sentence)
    sentence = _COUNT.sub(_count, sentence)
    sentence = _DIGIT_STRING.sub(lambda m: read_digits(m.group(), yao=True), sentence)
    sentence = _NUMBER.sub(_decimal, sentence)
    return _last_words(sentence)


def sentences(text: str) -> list[str]:
    """The text cut the way upstream's normaliser cuts it (spaces and bracket-like marks removed first), each
    sentence verbalised; the language's punctuation table is applied per sentence afterwards."""
    text = _REMOVED_FIRST.sub("", text.replace(" ", ""))
    pieces = re.split(r"\n+", _SENTENCE_END.sub("\\1\n", text).strip())
    return [verbalise(piece.strip()) for piece in pieces]
